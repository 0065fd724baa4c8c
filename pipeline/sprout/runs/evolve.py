"""`sprout evolve`: Evol-Instruct over a dataset the user already has (Alpaca rows or sprout records)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.backends.registry import Backends
from sprout.config.filters import FilterConfig
from sprout.config.paths import OutputFile, OutputFolder
from sprout.config.run import RunConfig
from sprout.filters.build import read_eval_files
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.io.dataset_io import read_records
from sprout.runs.context import RunSummary, open_run
from sprout.runs.driver import drive
from sprout.runs.plan import evol_judges, evol_step, judge_backends


class EvolveRunConfig(RunConfig):
    input: Path | None = None  # the dataset to evolve (`--input`); part of the config so a run dir knows its source
    out_dir: OutputFolder = Path("out/evolve")
    seed: int = 42
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = LocalBackendConfig()
    filters: FilterConfig = Field(default_factory=FilterConfig)
    evol_instruct: EvolInstructConfig = Field(default_factory=EvolInstructConfig)


def run_evolve(config: EvolveRunConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    sources = read_records(config.input)
    read_eval_files(config.filters)
    evol = config.evol_instruct
    backends = Backends(config.backend, config.cache, log)
    backends.resolve(judge_backends(config))
    summary = RunSummary(str(config.out_dir), seeds=len(sources), target=0, command="evolve")
    with open_run(config, summary, backends, evol_judges(evol), force, log, progress) as ctx:
        drive(ctx, [evol_step(evol, len(sources), sources, keep_original=evol.keep_original)])
    return summary
