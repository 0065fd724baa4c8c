"""The one shape every generator has, so one driver (runs/driver.py) can run any of them.

A generator turns its inputs into candidate records, step by step, and hands every candidate to the run's shared
filter stage (filters/shared.py), which it was given when it was built. A step returns what the stage accepted and
everything it dropped — parse failures included — so nothing leaves a generator without a line in a file. The
driver appends each step's result to the run's files at once (a killed run loses at most one step), reports the
units of work done to the progress display, and asks the generator for its summary entry at the end.

    driver                                generator
    ------                                ---------
    planned() -> units for progress       the work it is configured for (tasks, attempts, pairs, rows)
    while not done: step()                one step: model calls, parsing, the shared filter stage
    finish()                              leftovers written down (e.g. proposals never judged)
    summarize(summary)                    its section of report.json

The generators: Self-Instruct (generators/self_instruct), Evol-Instruct (generators/evol_instruct), pair synthesis
(generators/pair_synthesis) and FLAN template expansion (generators/flan). `sprout filter` runs no generator: it
hands a user's rows to the same filter stage directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sprout.core.records import Record, Rejection


@dataclass
class StepResult:
    """One step's output: the records the filter stage accepted, every candidate it (or parsing) rejected, and how
    many units of the generator's work the step completed (tasks grown, evolution attempts, pairs, rows)."""

    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    units: int = 0

    def __iadd__(self, other: StepResult) -> StepResult:
        self.records += other.records
        self.rejections += other.rejections
        self.units += other.units
        return self


@runtime_checkable
class Generator(Protocol):
    name: str  # in lineage, usage and the report: "self_instruct", "evol_instruct", "pair_synthesis:<task>", "flan"
    unit: str  # what its units of work are called in progress lines: "tasks", "attempts", "pairs", "rows"
    stopped_early: bool  # it stopped at a configured cap before its work was done (max_batches)

    def planned(self) -> int | None:
        """Units of work it is configured for (None while unknown)."""

    def progress(self) -> int:
        """Units of work done so far."""

    @property
    def done(self) -> bool:
        """No more steps to take: the work is done, or a cap stopped it (then `stopped_early`)."""

    def step(self) -> StepResult:
        """One step of work; its records and rejects are final (the shared filter stage has counted them)."""

    def finish(self) -> StepResult:
        """Called once after the last step: candidates it still holds are written down as rejects with a reason."""

    def summarize(self, summary) -> None:
        """Its entry in the run's summary (report.json): rounds, label balance, template use."""


def reached_goal_or_cap(generator, goal: int, max_batches: int, stop_message: str) -> bool:
    """`done` for a generator that works in batches towards a goal: done at `goal` units, or stopped early once
    `max_batches` batches are spent (then `stopped_early`, and `stop_message` is logged once)."""
    if generator.progress() >= goal:
        return True
    if generator.batches >= max_batches and not generator.stopped_early:
        generator.stopped_early = True
        generator.log(stop_message)
    return generator.stopped_early
