"""`device: auto` everywhere: CUDA in bf16 when there is one, else the CPU in fp32 (bf16 kills some CPUs)."""

import pytest
import torch
from sprout_trainer.config import TrainConfig

from sprout.backends.config import LocalBackendConfig
from sprout.backends.devices import compute_dtype, resolve_device
from sprout.core.errors import UserError


def test_auto_is_cuda_when_there_is_one_else_the_cpu_in_fp32():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert compute_dtype("cpu") == torch.float32
    assert LocalBackendConfig().device == "auto" and LocalBackendConfig().batch_size is None
    assert TrainConfig(model="embedded", data="x.jsonl").resolved_device() == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_one_error_naming_the_key_and_the_fix():
    with pytest.raises(UserError) as caught:
        resolve_device("cuda", "backend.device")
    assert "backend.device: cuda asked for, but this machine has no CUDA device" in str(caught.value)
    assert "Fix: backend.device: auto" in str(caught.value)
    with pytest.raises(UserError, match="not a device sprout runs on"):
        resolve_device("tpu")


def test_the_training_batch_fits_the_device_and_keeps_an_effective_batch_of_8():
    config = TrainConfig(model="embedded", data="x.jsonl")
    assert config.batch_plan("cpu") == (2, 4) and config.batch_plan("cuda") == (8, 1)
    assert TrainConfig(model="embedded", data="x.jsonl", batch_size=4).batch_plan("cpu") == (4, 2)
    assert TrainConfig(model="embedded", data="x.jsonl", batch_size=2, grad_accumulation=1).batch_plan("cuda") == (2, 1)


def test_auto_without_torch_imported_gives_torchs_answer():
    """The fast path (no GPU driver node -> cpu, without importing torch) against the slow one (torch's answer),
    in a fresh process where torch is not yet imported."""
    import json
    import subprocess
    import sys

    script = ("import sys, json\nfrom sprout.backends.devices import gpu_driver_present, resolve_device\n"
              "fast = resolve_device('auto'); imported = 'torch' in sys.modules\n"
              "import torch\nprint(json.dumps([fast, imported, gpu_driver_present(), torch.cuda.is_available()]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    fast, imported, driver, cuda = json.loads(done.stdout)
    assert fast == ("cuda" if cuda else "cpu")
    assert imported == driver  # torch is asked exactly when a driver might make CUDA work
    assert cuda <= driver  # CUDA never works without a driver node: the fast path's premise
