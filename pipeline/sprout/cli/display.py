"""The CLI's side of whole-run progress: a display made from the run's plan, and a log that prints above it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from sprout.runs.progress import GeneratorPlan, RunProgress


class RunDisplay:
    """Handed to a run function as `progress=` (called with the plan when the generators are about to run) and
    `log=` (lines go above the live display while it is up, straight to the console otherwise)."""

    def __init__(self, console: Console, pace: dict[str, float] | None = None, interval_s: float = 30.0):
        """`pace`: seconds per unit of work by generator kind, from a dry run of the same config (its ETAs before a
        generator has measured its own pace)."""
        self.console, self.pace, self.interval_s = console, pace or {}, interval_s
        self.current: RunProgress | None = None

    @contextmanager
    def __call__(self, plan) -> Iterator[RunProgress]:
        progress = RunProgress([GeneratorPlan(p.name, p.unit, p.total, self.pace.get(p.kind)) for p in plan],
                               console=self.console, interval_s=self.interval_s)
        with progress:
            self.current = progress
            try:
                yield progress
            finally:
                self.current = None

    def log(self, message: str) -> None:
        if self.current is not None:
            self.current.log(message)
        else:
            self.console.print(message, highlight=False, markup=False, soft_wrap=True)
