"""`sprout evolve`: Evol-Instruct over a dataset the user already has (Alpaca rows or sprout records)."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.backends.registry import Backends
from sprout.config.filters import FilterConfig
from sprout.config.paths import OutputFile, OutputFolder
from sprout.config.run import RunConfig
from sprout.filters.build import read_eval_files
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.evol_instruct.generator import make_evolver
from sprout.io.dataset_io import read_records
from sprout.io.run_lock import run_lock
from sprout.runs.data import RunFiles, RunSummary, evolve_rounds, finish_run, prepare_run_dir


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
    backends.resolve([evol.judge.backend] if evol.judge.backend else [])
    with run_lock(config.out_dir, log):
        prepare_run_dir(config, force)
        started = time.monotonic()
        generator = make_evolver(evol, config.filters, sources, backends.get, config.seed, dedup_against=sources)
        summary = RunSummary(str(config.out_dir), seeds=len(sources), target=0, command="evolve")

        def after_round(round_no):
            summary.batches += 1

        try:
            with RunFiles(summary) as files:
                if evol.keep_original:
                    files.write(sources)
                evolve_rounds(generator, evol.rounds, files, log, after_round, step_done=progress)
        finally:
            backends.close()
        summary.work = {"evol_instruct": generator.attempted}
        finish_run(summary, {"evolutions": generator.stage}, backends.usage(), started)
    return summary
