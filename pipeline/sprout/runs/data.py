"""`sprout data`: grow the seed set into out/<run>/examples.jsonl, with rejects and a report beside it.

The plan (runs/plan.py): Self-Instruct, then Evol-Instruct, pair synthesis per task and FLAN expansion as
configured, run by the one driver over one RunContext and one shared filter stage. Every input is read before the
run's folder is touched, and every model is resolved, so a user mistake costs seconds and leaves no file behind.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sprout.backends.base import Usage
from sprout.backends.cache import CachedBackend
from sprout.backends.pricing import priced
from sprout.config import BackendConfig, DataConfig
from sprout.runs.context import RunSummary, open_run
from sprout.runs.driver import drive
from sprout.runs.plan import data_plan, evol_judges, judge_backends, read_data_inputs


def run_data(config: DataConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    inputs = read_data_inputs(config)
    backends = Backends(config.backend, config.cache, log)
    backends.resolve(judge_backends(config))
    summary = RunSummary(str(config.out_dir), len(inputs.seeds), config.generators.self_instruct.target)
    with open_run(config, summary, backends, evol_judges(config.generators.evol_instruct), force, log,
                  progress) as ctx:
        drive(ctx, data_plan(config, inputs))
    return summary


class Backends:
    """The run's backend and any other model a judge asks for, each loaded once, all on the one response cache."""

    def __init__(self, main: BackendConfig, cache: Path, log):
        self.cache, self.log = cache, log
        self.model_dirs = {}
        self.resolve([main])  # fail fast, before anything is written
        self.main_config = main
        self.open: dict[BackendConfig, CachedBackend] = {}

    def resolve(self, configs: list[BackendConfig]) -> None:
        from sprout.backends.model_store import resolve_model

        for c in configs:
            if c.kind == "vllm":
                from sprout.backends.vllm_offline import import_vllm

                import_vllm()  # missing vLLM is a user error now, not after the first batch
                if c.model != "embedded" and not Path(c.model).exists():
                    self.model_dirs.setdefault(c.model, c.model)  # a hub id: vLLM fetches or finds it itself
                    continue
            if c.kind in ("local", "vllm") and c.model not in self.model_dirs:
                self.model_dirs[c.model] = resolve_model(c.model, log=self.log)

    def get(self, config: BackendConfig | None = None) -> CachedBackend:
        from sprout.backends.local import LocalBackend

        config = config or self.main_config
        if config not in self.open:
            if config.kind == "openai":
                from sprout.backends.openai_compat import OpenAIBackend

                inner = OpenAIBackend(config.base_urls, config.model, config.api_key_env, config.max_concurrency,
                                      config.timeout, config.max_retries, config.set_aside_after,
                                      config.set_aside_for, prefill=config.prefill,
                                      token_field=config.token_field, log=self.log)
            elif config.kind == "vllm":
                from sprout.backends.vllm_offline import VLLMBackend

                inner = VLLMBackend(self.model_dirs[config.model], config.tensor_parallel_size,
                                    config.gpu_memory_utilization, config.max_model_len, config.dtype,
                                    config.data_parallel_size)
            else:
                inner = LocalBackend(self.model_dirs[config.model], config.batch_size, config.threads, config.device)
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
