"""Which device and precision a model runs on: `auto` is CUDA when there is one, else the CPU.

On CUDA sprout computes in bf16 (fp16 on a GPU without bf16); on the CPU in fp32, always: bf16 kernels kill some
CPUs outright ("illegal instruction"), and fp32 is what CPU kernels are fast at anyway.
"""

from __future__ import annotations

import os
import sys

from sprout.core.errors import UserError

DEVICES = ("auto", "cpu", "cuda")

# What a GPU driver puts in /dev (NVIDIA; AMD ROCm, which torch also calls "cuda"; WSL's GPU bridge). Without any of
# them torch.cuda.is_available() is False, so `auto` on such a machine needs no torch: importing it costs ~2.5 s,
# paid by every llama.cpp run, whose process otherwise never loads torch.
GPU_DRIVER_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def gpu_driver_present() -> bool:
    return any(os.path.exists(node) for node in GPU_DRIVER_NODES)


def resolve_device(device: str, key: str = "device") -> str:
    """`auto` -> `cuda` or `cpu`; `cuda` (or `cuda:N`) on a machine without CUDA is a user error naming the key."""
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules and not gpu_driver_present()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{key}: {device} asked for, but this machine has no CUDA device (torch "
                        f"{torch.__version__}). Fix: {key}: auto (or cpu).")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"{key}: {device!r} is not a device sprout runs on. Fix: auto, cpu, cuda or cuda:N.")
    return device


def compute_dtype(device: str):
    """bf16 on a GPU that has it (fp16 on one that does not), fp32 on the CPU."""
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
