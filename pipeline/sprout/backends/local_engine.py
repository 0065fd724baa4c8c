"""Which engine runs a `kind: local` backend: llama.cpp or transformers.

llama.cpp runs the embedded model from the GGUF it ships as, on the CPU, ~3x faster end to end on 2 cores than the
transformers loop (issue 18, bench/generation.py); transformers runs any model folder, on the CPU or CUDA, and is
where fine-tuned adapters are evaluated. `auto` takes llama.cpp where it can.
"""

from __future__ import annotations

import importlib.util

from sprout.core.errors import UserError


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def choose_engine(config, log=print) -> str:
    from sprout.backends.devices import resolve_device
    from sprout.backends.model_store import EMBEDDED

    embedded = config.model == EMBEDDED
    if config.engine == "transformers":
        return "transformers"
    if config.engine == "llama.cpp":
        if not embedded:
            raise UserError(f"backend.engine: llama.cpp runs the embedded model; {config.model!r} is a model "
                            "folder, which runs on transformers. Fix: backend.engine: auto (or transformers).")
        if not llama_cpp_installed():
            raise UserError("backend.engine: llama.cpp, but llama-cpp-python is not installed. Fix: `make setup` "
                            "(or pip install llama-cpp-python; it builds from source in ~5 min), or "
                            "backend.engine: transformers.")
        return "llama.cpp"
    if not embedded or resolve_device(config.device, "backend.device") != "cpu":
        return "transformers"
    if not llama_cpp_installed():
        log("Note: llama-cpp-python is not installed, so the embedded model runs on transformers (~3x slower on "
            "the CPU). `make setup` installs it.")
        return "transformers"
    return "llama.cpp"
