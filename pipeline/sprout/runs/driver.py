"""The one driver: runs a run's generators in order over its RunContext.

Every command that generates (`data`, `evolve`, `synth`, `templates expand`) is a plan — a list of generators with
their planned units — handed to `drive`. A generator is built when its turn comes (Evol-Instruct over the grown pool
needs Self-Instruct's tasks), steps until done, and every step's records and rejects are appended to the run's files
at once; the progress display hears each step. See generators/protocol.py for the generator side.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

from sprout.generators.protocol import Generator, StepResult
from sprout.runs.context import RunContext


@dataclass
class Planned:
    """A generator of the plan: its name and units (for progress and the dry run) and how to build it."""

    name: str
    unit: str
    total: int | None  # planned units; None while unknown (e.g. rows of a file not read yet)
    build: Callable[[RunContext], Generator]

    @property
    def kind(self) -> str:
        """The generator kind a name belongs to: "pair_synthesis:promises" -> "pair_synthesis"."""
        return self.name.split(":")[0]


def drive(ctx: RunContext, plan: list[Planned]) -> dict[str, Generator]:
    """Run each planned generator to its end; returns them by name (their state is the run's result).
    `ctx.progress`, when set, makes the run's progress display from the plan (see runs/progress.py)."""
    with ctx.progress(plan) if ctx.progress else nullcontext() as display:
        for planned in plan:
            generator = planned.build(ctx)
            ctx.generators[planned.name] = generator
            if display:  # its total may be known only now (Evol-Instruct over the tasks Self-Instruct grew)
                display.update(planned.name, generator.progress(), generator.planned())
                display.start(planned.name)
            while not generator.done:
                _write(ctx, generator.step())
                ctx.summary.batches += 1
                if display:
                    display.update(planned.name, generator.progress(), generator.planned())
            _write(ctx, generator.finish())
            generator.summarize(ctx.summary)
            ctx.summary.work[planned.kind] = ctx.summary.work.get(planned.kind, 0) + generator.progress()
            ctx.summary.stopped_early |= generator.stopped_early
            if display:
                display.finish(planned.name)
    return ctx.generators


def _write(ctx: RunContext, result: StepResult) -> None:
    ctx.files.write(result.records, result.rejections)
