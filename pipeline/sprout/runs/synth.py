"""`sprout synth` (pairs for one user task) and `sprout templates expand` (FLAN expansion) on their own: the same
generators, plans and driver as `sprout data`, one generator each."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.backends.registry import Backends
from sprout.config.filters import FilterConfig
from sprout.config.paths import OutputFile, OutputFolder
from sprout.config.run import RunConfig
from sprout.filters.build import read_eval_files
from sprout.generators.flan.config import FlanConfig
from sprout.generators.flan.expansion import load_source
from sprout.generators.pair_synthesis.config import PairSynthesisConfig
from sprout.generators.pair_synthesis.task_spec import load_specs
from sprout.runs.context import RunSummary, open_run
from sprout.runs.driver import drive
from sprout.runs.plan import flan_step, judge_backends, synth_step


class SynthRunConfig(RunConfig):
    out_dir: OutputFolder = Path("out/synth")
    seed: int = 42
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = LocalBackendConfig()
    filters: FilterConfig = Field(default_factory=FilterConfig)
    synth: PairSynthesisConfig


def run_synth(config: SynthRunConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    (spec,) = load_specs([config.synth])
    read_eval_files(config.filters)
    backends = Backends(config.backend, config.cache, log)
    backends.resolve(judge_backends(config))
    summary = RunSummary(str(config.out_dir), seeds=len(spec.examples), target=0, command="synth")
    with open_run(config, summary, backends, force=force, log=log, progress=progress) as ctx:
        drive(ctx, [synth_step(config.synth, spec)])
    return summary


class FlanRunConfig(RunConfig):
    """`sprout templates expand`: FLAN expansion alone (no model), into its own run directory."""

    out_dir: OutputFolder = Path("out/flan")
    seed: int = 42
    filters: FilterConfig = Field(default_factory=FilterConfig)
    flan: FlanConfig


def run_flan(config: FlanRunConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    sources = [load_source(entry, f"flan.tasks[{i}]") for i, entry in enumerate(config.flan.tasks)]
    read_eval_files(config.filters)
    summary = RunSummary(str(config.out_dir), seeds=sum(len(s.rows) for s in sources), target=0, command="flan")
    with open_run(config, summary, force=force, log=log, progress=progress) as ctx:
        drive(ctx, [flan_step(config.flan, sources)])
    return summary
