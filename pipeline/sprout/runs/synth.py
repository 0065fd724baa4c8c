"""`sprout synth` (pairs for one user task) and `sprout templates expand` (FLAN expansion) on their own.
`synthesize` is also the step `sprout data` runs per task."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.backends.registry import Backends
from sprout.config.filters import FilterConfig
from sprout.config.paths import OutputFile, OutputFolder
from sprout.config.run import RunConfig
from sprout.core.errors import UserError
from sprout.filters.build import build_stage, read_eval_files
from sprout.generators.flan.config import FlanConfig
from sprout.generators.flan.expansion import load_source
from sprout.generators.pair_synthesis.config import PairSynthesisConfig
from sprout.generators.pair_synthesis.generator import PairSynthesis
from sprout.generators.pair_synthesis.task_spec import TaskSpec, load_task_spec
from sprout.io.run_lock import run_lock
from sprout.runs.data import RunFiles, RunSummary, finish_run, prepare_run_dir


class SynthRunConfig(RunConfig):
    out_dir: OutputFolder = Path("out/synth")
    seed: int = 42
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = LocalBackendConfig()
    filters: FilterConfig = Field(default_factory=FilterConfig)
    synth: PairSynthesisConfig


def load_specs(entries: list[PairSynthesisConfig]) -> list[TaskSpec]:
    """Each task spec, checked against its config entry (label_distribution must name the spec's labels)."""
    specs = []
    for i, entry in enumerate(entries):
        spec = load_task_spec(entry.task)
        if entry.label_distribution is not None:
            if not spec.is_classification:
                raise UserError(f"pair_synthesis[{i}].label_distribution: {entry.task} is a generation task; "
                                "remove the key (it has no labels).")
            unknown = sorted(set(entry.label_distribution) - set(spec.labels))
            if unknown:
                raise UserError(f"pair_synthesis[{i}].label_distribution: unknown label(s) {unknown}; the labels of "
                                f"{entry.task} are {spec.labels}.")
        specs.append(spec)
    return specs


def synthesize(entry: PairSynthesisConfig, spec: TaskSpec, backends: Backends, filters: FilterConfig, seed: int,
               files: RunFiles, log, progress=None) -> PairSynthesis:
    """Batches until `n` pairs are accepted (or max_batches); every batch's records land in the run's files."""
    stage = build_stage(f"pairs:{spec.name}", entry.rules, filters)
    generator = PairSynthesis(entry, spec, backends.get(), stage, seed)
    batch, summary = 0, files.summary
    while not generator.done:
        if batch >= entry.max_batches:
            summary.stopped_early = True
            log(f"pair synthesis {spec.name}: stopped after max_batches={entry.max_batches} with "
                f"{sum(generator.accepted.values())} of {entry.n} pairs; raise max_batches to go on.")
            break
        result = generator.run_batch(batch)
        files.write(result.records, result.rejections)
        summary.batches += 1
        batch += 1
        if progress:
            progress(sum(generator.accepted.values()), entry.n)
    summary.synthesis.append(generator.stats())
    return generator


def run_synth(config: SynthRunConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    (spec,) = load_specs([config.synth])
    read_eval_files(config.filters)
    backends = Backends(config.backend, config.cache, log)
    with run_lock(config.out_dir, log):
        prepare_run_dir(config, force)
        started = time.monotonic()
        summary = RunSummary(str(config.out_dir), seeds=len(spec.examples), target=0, command="synth")
        try:
            with RunFiles(summary) as files:
                generator = synthesize(config.synth, spec, backends, config.filters, config.seed, files, log, progress)
        finally:
            backends.close()
        finish_run(summary, {generator.stage.name: generator.stage}, backends.usage(), started)
    return summary


class FlanRunConfig(RunConfig):
    """`sprout templates expand`: FLAN expansion alone (no model), into its own run directory."""

    out_dir: OutputFolder = Path("out/flan")
    seed: int = 42
    filters: FilterConfig = Field(default_factory=FilterConfig)
    flan: FlanConfig


def run_flan(config: FlanRunConfig, force: bool = False, log=print) -> RunSummary:
    from sprout.runs.data import expand_flan

    sources = [load_source(entry, f"flan.tasks[{i}]") for i, entry in enumerate(config.flan.tasks)]
    read_eval_files(config.filters)
    with run_lock(config.out_dir, log):
        prepare_run_dir(config, force)
        started = time.monotonic()
        summary = RunSummary(str(config.out_dir), seeds=sum(len(s.rows) for s in sources), target=0,
                             command="flan")
        with RunFiles(summary) as files:
            expansion = expand_flan(config.flan, config.filters, config.seed, sources, files, log)
        finish_run(summary, {"flan": expansion.stage}, {}, started)
    return summary
