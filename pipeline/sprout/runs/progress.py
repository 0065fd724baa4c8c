"""Whole-run progress: one display for every generator of a run, with each one's units and ETA and the run's ETA.

Why it exists: the CLI's old bar followed only the first generator (Self-Instruct's target), so Evol-Instruct, pair
synthesis and FLAN ran under a bar that already said 100%, and in a non-interactive log (CI, `| tee`) it printed
nothing. `RunProgress` shows a row per generator plus a row for the run: a rich live display on a terminal; a plain
`progress ...` line elsewhere, at each `start` and `finish` and every `interval_s` seconds (checked on `update`).

ETA rules:
- A generator's ETA is its own measured pace (seconds since its `start` / units done since then × units left) once
  it has done a unit; before that `units left × seconds_per_unit` from the dry-run estimate; else unknown ("ETA ?").
  Units done before `start` (a resumed run reports them with `update` first) do not count towards the pace.
- The run's ETA sums the remaining time of every unfinished generator; a pending one counts `total ×
  seconds_per_unit`. A pace measured on one generator is never lent to another: their units differ (a Self-Instruct
  task costs several requests, an Evol attempt one), so when any generator's remaining time is unknown the run's ETA
  is a lower bound, shown "run ETA ≥ X" ("run ETA ?" when nothing is known).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text


@dataclass
class GeneratorPlan:
    """One generator of the run as the display plans it."""

    name: str  # "self_instruct", "evol_instruct", "pair_synthesis:political_promises", "flan"
    unit: str  # "tasks", "attempts", "pairs", "rows"
    total: int | None  # planned units (None: unknown yet)
    seconds_per_unit: float | None = None  # from a dry-run estimate, when there is one


@dataclass
class _State:
    plan: GeneratorPlan
    done: int = 0
    started_at: float | None = None
    done_at_start: int = 0
    measured_at: float | None = None  # when the last `update` came: the pace is measured up to then
    finished_at: float | None = None
    task: TaskID | None = None


def format_duration(seconds: float) -> str:
    """`42s`, `3m12s`, `2h05m`: short enough for a progress line, rounded to the second (minute past an hour)."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    hours, minutes = divmod(round(whole / 60), 60)
    return f"{hours}h{minutes:02d}m"


class _TextOf(ProgressColumn):
    """A column whose text the display computes at render time (so the ETA follows the clock between updates)."""

    def __init__(self, text: Callable[[Task], str]):
        super().__init__()
        self._text = text

    def render(self, task: Task) -> Text:
        return Text(self._text(task))


class RunProgress:
    """One display for a whole run: a line per generator with its own units and ETA, and the run's overall ETA.

    Use as a context manager around the run. Nothing is drawn or printed before the first `start`, `update` or `log`,
    so a run refused while it reads its inputs prints its error and no empty display.
    `interactive=None` picks the live display when `console.is_terminal`, plain lines otherwise."""

    def __init__(self, plan: list[GeneratorPlan], *, console: Console, interactive: bool | None = None,
                 interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        names = [entry.name for entry in plan]
        if len(set(names)) != len(names):
            raise ValueError(f"generator names repeat in the progress plan: {names}")
        self._states = {entry.name: _State(replace(entry)) for entry in plan}
        self._console = console
        self.interactive = console.is_terminal if interactive is None else interactive
        self._interval_s = interval_s
        self._clock = clock
        self._t0 = self._last_line = clock()
        self._bar: Progress | None = None
        self._run_task: TaskID | None = None
        if self.interactive:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), _TextOf(self._count_text),
                                 _TextOf(self._eta_text), console=console, get_time=clock, refresh_per_second=4)
            for state in self._states.values():
                state.task = self._bar.add_task(state.plan.name, total=state.plan.total, generator=state.plan.name)
            self._run_task = self._bar.add_task("run", total=len(plan), generator=None)

    def __enter__(self) -> RunProgress:
        self._t0 = self._last_line = self._clock()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None and self._bar.live.is_started:
            self._bar.stop()

    # ---- events from the driver

    def start(self, generator: str) -> None:
        """`generator` begins now; its pace counts from here (units it had already done before do not count)."""
        state = self._state(generator)
        state.started_at, state.done_at_start, state.finished_at = self._clock(), state.done, None
        state.measured_at = state.started_at
        self._changed(always=True)

    def update(self, generator: str, done: int, total: int | None = None) -> None:
        """Absolute units done; `total`, when given, replaces the planned one (Evol learns its rows late).
        Calling it on a pending generator records done/total and leaves it waiting."""
        state = self._state(generator)
        state.done, state.measured_at = done, self._clock()
        if total is not None:
            state.plan.total = total
        self._changed(always=False)

    def finish(self, generator: str) -> None:
        """`generator` is done: its row stays, full, with the time it took."""
        state = self._state(generator)
        now = self._clock()
        if state.started_at is None:  # finished without a start (nothing to do): it took no time
            state.started_at, state.done_at_start = now, state.done
        state.finished_at = now
        self._changed(always=True)

    def log(self, message: str) -> None:
        """A plain log line; on a terminal it is printed above the live display, which it does not break."""
        self._show()
        self._console.print(message, markup=False, highlight=False, soft_wrap=True)

    # ---- what is shown (public so that tests and reports can read the same numbers)

    def eta(self, generator: str) -> float | None:
        """Seconds `generator` has left: 0 when finished, None when unknown. Computed as of its last `update`, so
        the live display does not drift between updates (an `update` with an unchanged count re-measures the pace)."""
        state = self._state(generator)
        plan = state.plan
        if state.finished_at is not None:
            return 0.0
        if plan.total is None:
            return None
        left = max(0, plan.total - state.done)
        measured = state.done - state.done_at_start
        if left == 0:
            return 0.0
        if state.started_at is not None and state.measured_at is not None and measured > 0:
            return (state.measured_at - state.started_at) / measured * left
        if plan.seconds_per_unit is not None:
            return plan.seconds_per_unit * left
        return None

    def run_eta(self) -> tuple[float, bool]:
        """(seconds the run has left summed over the generators whose ETA is known, whether every one is known)."""
        etas = [self.eta(name) for name in self._states]
        return sum(eta for eta in etas if eta is not None), all(eta is not None for eta in etas)

    def run_eta_text(self) -> str:
        """`run ETA 14m00s`, `run ETA ≥ 5m00s` (some generator's time is unknown) or `run ETA ?`."""
        return f"run {self._run_eta_words()}"

    def _run_eta_words(self) -> str:
        seconds, complete = self.run_eta()
        if complete:
            return f"ETA {format_duration(seconds)}"
        return f"ETA ≥ {format_duration(seconds)}" if seconds > 0 else "ETA ?"

    def line(self) -> str:
        """The plain progress line: elapsed time, each generator, the run's ETA, separated by ` | `."""
        parts = [self._describe(state) for state in self._states.values()]
        return f"progress {format_duration(self._clock() - self._t0)}: " + " | ".join([*parts, self.run_eta_text()])

    # ---- internals

    def _state(self, generator: str) -> _State:
        try:
            return self._states[generator]
        except KeyError:
            raise ValueError(f"{generator!r} is not in the progress plan ({', '.join(self._states)})") from None

    def _describe(self, state: _State) -> str:
        plan = state.plan
        total = "?" if plan.total is None else plan.total
        if state.finished_at is not None:
            return f"{plan.name} done {state.done}/{total} {plan.unit} in {self._took(state)}"
        if state.started_at is None:
            return f"{plan.name} waiting {total} {plan.unit}"
        eta = self.eta(plan.name)
        return f"{plan.name} {state.done}/{total} {plan.unit} (ETA {'?' if eta is None else format_duration(eta)})"

    @staticmethod
    def _took(state: _State) -> str:
        return format_duration((state.finished_at or 0.0) - (state.started_at or 0.0))

    def _count_text(self, task: Task) -> str:
        name = task.fields["generator"]
        if name is None:
            finished = sum(state.finished_at is not None for state in self._states.values())
            return f"{finished}/{len(self._states)} generators"
        state = self._states[name]
        plan = state.plan
        total = "?" if plan.total is None else plan.total
        if state.started_at is None and state.finished_at is None:
            return f"waiting {total} {plan.unit}"
        return f"{state.done}/{total} {plan.unit}"

    def _eta_text(self, task: Task) -> str:
        name = task.fields["generator"]
        if name is None:
            return self._run_eta_words()
        state = self._states[name]
        if state.finished_at is not None:
            return f"done in {self._took(state)}"
        if state.started_at is None:
            return ""
        eta = self.eta(name)
        return f"ETA {'?' if eta is None else format_duration(eta)}"

    def _show(self) -> None:
        if self._bar is not None and not self._bar.live.is_started:
            self._bar.start()

    def _changed(self, *, always: bool) -> None:
        if self._bar is not None:
            self._show()
            for state in self._states.values():
                total, completed = state.plan.total, state.done
                if state.finished_at is not None:  # a finished row stays, full (its count says what was done)
                    total = completed = total or state.done
                self._bar.update(state.task, completed=completed, total=total)
            finished = sum(state.finished_at is not None for state in self._states.values())
            self._bar.update(self._run_task, completed=finished)
            return
        now = self._clock()
        if always or now - self._last_line >= self._interval_s:
            self._last_line = now
            self._console.print(self.line(), markup=False, highlight=False, soft_wrap=True)
