"""The backend registry: each `backend.kind` -> how its model is found and how the backend is built, and `Backends`,
which opens each configured model once for a run, behind the one response cache.

A new kind is a config model (backends/config.py) and one entry in KINDS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sprout.backends.base import Backend, Usage
from sprout.backends.cache import CachedBackend
from sprout.backends.config import AnyBackendConfig, LocalBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from sprout.backends.pricing import priced


def _find_local(config: LocalBackendConfig, log) -> Path:
    from sprout.backends.model_store import resolve_model

    return resolve_model(config.model, log=log)


def _check_vllm(config: VLLMBackendConfig) -> None:
    from sprout.backends.vllm_offline import import_vllm

    import_vllm()  # missing vLLM is a user error now, not after the first batch


def _check_local(config: LocalBackendConfig) -> None:
    from sprout.backends.local_engine import choose_engine

    choose_engine(config, log=lambda *_: None)  # an engine that cannot run this model is a user error now


def _find_vllm(config: VLLMBackendConfig, log) -> str | Path:
    if config.model != "embedded" and not Path(config.model).exists():
        return config.model  # a hub id: vLLM fetches or finds it itself
    return _find_local(config, log)


def _local(config: LocalBackendConfig, model_dir, log) -> Backend:
    from sprout.backends.local_engine import choose_engine

    if choose_engine(config, log) == "llama.cpp":
        from sprout.backends.llama_backend import LlamaCppBackend
        from sprout.backends.model_store import prepare_engine_gguf

        return LlamaCppBackend(prepare_engine_gguf(config.weights, log), model_dir, config.threads,
                               config.batch_size)
    from sprout.backends.local import LocalBackend

    return LocalBackend(model_dir, config.batch_size, config.threads, config.device)


def _openai(config: OpenAIBackendConfig, model_dir, log) -> Backend:
    from sprout.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(config.base_urls, config.model, config.api_key_env, config.max_concurrency, config.timeout,
                         config.max_retries, config.set_aside_after, config.set_aside_for, prefill=config.prefill,
                         token_field=config.token_field, log=log)


def _vllm(config: VLLMBackendConfig, model_dir, log) -> Backend:
    from sprout.backends.vllm_offline import VLLMBackend

    return VLLMBackend(model_dir, config.tensor_parallel_size, config.gpu_memory_utilization, config.max_model_len,
                       config.dtype, config.data_parallel_size)


@dataclass(frozen=True)
class Kind:
    """How one backend kind is made. Before anything is written, `check` finds what it needs on this machine (vLLM)
    and `find` locates its model, once per model (None: a server has it); `build` makes the backend from the config
    and what `find` returned. Backend modules are imported only here, when used."""

    build: Callable[[Any, Any, Callable], Backend]
    find: Callable[[Any, Callable], Any] | None = None
    check: Callable[[Any], None] | None = None


KINDS: dict[str, Kind] = {"local": Kind(_local, _find_local, _check_local), "openai": Kind(_openai),
                          "vllm": Kind(_vllm, _find_vllm, _check_vllm)}


class Backends:
    """The run's backend and any other model a judge asks for, each loaded once, all on the one response cache."""

    def __init__(self, main: AnyBackendConfig, cache: Path, log):
        self.cache, self.log = cache, log
        self.model_dirs: dict[str, Any] = {}
        self.resolve([main])  # fail fast, before anything is written
        self.main_config = main
        self.open: dict[AnyBackendConfig, CachedBackend] = {}

    def resolve(self, configs: list[AnyBackendConfig]) -> None:
        """Find each config's model now (a missing model or package is a user error before any work)."""
        for config in configs:
            kind = KINDS[config.kind]
            if kind.check:
                kind.check(config)
            if kind.find and config.model not in self.model_dirs:
                self.model_dirs[config.model] = kind.find(config, self.log)

    def get(self, config: AnyBackendConfig | None = None) -> CachedBackend:
        config = config or self.main_config
        if config not in self.open:
            self.resolve([config])
            inner = KINDS[config.kind].build(config, self.model_dirs.get(config.model), self.log)
            self.open[config] = CachedBackend(inner, self.cache, config.max_failure_rate)
        return self.open[config]

    def usage(self) -> dict:
        total = Usage()
        for backend in self.open.values():
            total.merge(backend.usage)
        return priced(asdict(total), {b.model_id: c.price for c, b in self.open.items()})

    def close(self) -> None:
        for backend in self.open.values():
            backend.close()
