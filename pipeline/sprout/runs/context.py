"""What every run shares: its summary, its context (config, backends, the shared filter stage, files, log,
progress), and the one way a run is opened and finished.

`open_run` is the frame of every command that writes a run folder (`data`, `evolve`, `synth`, `templates expand`):
take the folder's lock, check or record the config, open the files, hand over a RunContext, and — only if the run
got to the end — write report.json, report.md and report.html. Order matters for honest errors: the config and every
input are read before `open_run`, so a user mistake costs seconds and leaves no file behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sprout.config.loader import dump_resolved
from sprout.core.errors import UserError
from sprout.filters.dedup_rules import SCORE_FLOOR
from sprout.filters.heavy_drops import heavy_drops
from sprout.filters.shared import RunFilters, check_judges, judge_entries
from sprout.io.jsonl import atomic_write
from sprout.io.run_lock import run_lock
from sprout.reports.report import write_reports
from sprout.runs.files import RunFiles

OUTPUTS = ("examples.jsonl", "rejected.jsonl", "report.json", "config.yaml")


@dataclass
class RunSummary:
    """report.json's facts about a run. Filled by the driver (counts, steps, work) and by each generator's
    `summarize` (its own section); `finish_run` adds the funnel, histogram, usage and warnings."""

    out_dir: str
    seeds: int
    target: int
    new_tasks: int = 0
    examples: int = 0
    rejected: int = 0
    batches: int = 0  # steps the generators took
    seconds: float = 0.0
    stages: dict = field(default_factory=dict)
    histograms: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    stopped_early: bool = False
    synthesis: list = field(default_factory=list)  # per task: label target, produced and accepted per mode
    flan: list = field(default_factory=list)  # per template set: rows, records, uses per template
    work: dict = field(default_factory=dict)  # units of work per generator (tasks grown, evolutions, pairs)
    evol_rounds: dict = field(default_factory=dict)  # Evol-Instruct: each round's fates, every input row's outcome
    command: str = "data"  # the command that made the run: data, filter, evolve, synth, flan
    warnings: list = field(default_factory=list)  # a rule that dropped most of what it checked, with the key to change


@dataclass
class RunContext:
    """One run's shared parts, handed to every generator builder and to the driver."""

    config: Any  # the run's validated config (DataConfig, EvolveRunConfig, ...)
    backends: Any  # backends.registry.Backends, or None for a run without a model (FLAN expansion)
    filters: RunFilters
    files: RunFiles
    summary: RunSummary
    log: Callable[[str], None] = print
    progress: Any = None  # runs.progress.RunProgress, or None
    generators: dict = field(default_factory=dict)  # the generators built so far, by name (a later one may read
    # an earlier one's output: Evol-Instruct evolves the tasks Self-Instruct grew)

    @property
    def seed(self) -> int:
        return self.config.seed


def prepare_run_dir(config, force: bool) -> None:
    out = Path(config.out_dir)
    recorded = out / "config.yaml"
    if recorded.exists() and recorded.read_text(encoding="utf-8") != dump_resolved(config):
        if not force:
            raise UserError(f"{out} holds a run made with a different config. Fix: use another out_dir, or "
                            "--force to discard that run and start over.")
    if force:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    atomic_write(recorded, dump_resolved(config))


def histogram(scores: list[float | None], floor: float = SCORE_FLOOR, width: float = 0.05) -> dict[str, list]:
    """Bins of `width` from `floor` to 1, and one bin below the floor (where a score of None goes: see
    dedup_rules.SCORE_FLOOR)."""
    steps = round((1 - floor) / width)
    edges = [0.0] + [round(floor + i * width, 4) for i in range(steps + 1)]
    counts = [0] * (len(edges) - 1)
    for score in scores:
        counts[0 if score is None or score < floor else min(1 + int((score - floor) / width + 1e-9), steps)] += 1
    return {"edges": edges, "counts": counts}


def finish_run(summary: RunSummary, filters: RunFilters, usage: dict, started: float) -> None:
    """Counts, histogram, usage and time into report.json, then report.md and report.html beside it."""
    summary.seconds = round(time.monotonic() - started, 1)
    summary.stages = {name: asdict(stage.counts) for name, stage in filters.stages.items()}
    scores = filters.rouge_scores()
    summary.histograms = {"rouge_l": histogram(scores)} if scores else {}
    summary.usage = usage
    summary.warnings = heavy_drops(summary.stages, summary.command)
    atomic_write(Path(summary.out_dir) / "report.json", json.dumps(asdict(summary), indent=2) + "\n")
    write_reports(Path(summary.out_dir))


@contextmanager
def open_run(config, summary: RunSummary, backends=None, judges=(), force: bool = False, log=print,
             progress=None) -> Iterator[RunContext]:
    """The frame of a run (see the module docstring). `judges`: judges beyond `filters.judges`, as (JudgeConfig,
    generators) pairs. The reports are written only when the body ends without an error."""
    check_judges(judge_entries(config.filters, judges), has_model=backends is not None)  # before any file is made
    with run_lock(config.out_dir, log):
        prepare_run_dir(config, force)
        started = time.monotonic()
        try:
            filters = RunFilters(config.filters, backends.get if backends else None, judges)
            with RunFiles(summary) as files:
                yield RunContext(config, backends, filters, files, summary, log, progress)
        finally:
            if backends:
                backends.close()
        finish_run(summary, filters, backends.usage() if backends else {}, started)
