"""Whole-run progress (sprout.runs.progress): the ETA arithmetic, the plain log line and its interval, the live rows.

No model and no sleeps: the clock is a number the test moves."""

import io
import re

import pytest
from rich.console import Console

from sprout.runs.progress import GeneratorPlan, RunProgress, format_duration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(plan, clock, **kwargs):
    out = io.StringIO()
    progress = RunProgress(plan, console=Console(file=out, force_terminal=False, width=60), clock=clock, **kwargs)
    return progress, out


def si(total=40, seconds_per_unit=None):
    return GeneratorPlan("self_instruct", "tasks", total, seconds_per_unit)


def evol(total=80, seconds_per_unit=3.0):
    return GeneratorPlan("evol_instruct", "attempts", total, seconds_per_unit)


def test_durations_are_short_and_human():
    assert [format_duration(s) for s in (0, 4.4, 59.4, 59.6, 192, 3599, 3600, 7500, -3)] == [
        "0s", "4s", "59s", "1m00s", "3m12s", "59m59s", "1h00m", "2h05m", "0s"]


def test_a_line_at_each_start_and_finish_and_every_interval_on_update():
    clock = Clock()
    progress, out = plain([si(), evol()], clock, interval_s=30)
    with progress:
        assert out.getvalue() == ""  # nothing before the first event: a refused run prints no empty progress
        progress.start("self_instruct")
        for now, done in ((10, 2), (29.9, 5)):
            clock.now = now
            progress.update("self_instruct", done)
        assert len(out.getvalue().splitlines()) == 1
        clock.now = 30
        progress.update("self_instruct", 6)
        clock.now = 45
        progress.update("self_instruct", 9)
        clock.now = 59.9
        progress.update("self_instruct", 11)
        assert len(out.getvalue().splitlines()) == 2  # the interval counts from the last line, at 30
        clock.now = 60
        progress.update("self_instruct", 12)
        clock.now = 100
        progress.update("self_instruct", 40)  # 40 s after the last line: one more
        progress.finish("self_instruct")
        progress.start("evol_instruct")
        clock.now = 101
        progress.update("evol_instruct", 1)
    assert out.getvalue().splitlines() == [
        "progress 0s: self_instruct 0/40 tasks (ETA ?) | evol_instruct waiting 80 attempts | run ETA ≥ 4m00s",
        "progress 30s: self_instruct 6/40 tasks (ETA 2m50s) | evol_instruct waiting 80 attempts | run ETA 6m50s",
        "progress 1m00s: self_instruct 12/40 tasks (ETA 2m20s) | evol_instruct waiting 80 attempts | run ETA 6m20s",
        "progress 1m40s: self_instruct 40/40 tasks (ETA 0s) | evol_instruct waiting 80 attempts | run ETA 4m00s",
        "progress 1m40s: self_instruct done 40/40 tasks in 1m40s | evol_instruct waiting 80 attempts | run ETA 4m00s",
        "progress 1m40s: self_instruct done 40/40 tasks in 1m40s | evol_instruct 0/80 attempts (ETA 4m00s)"
        " | run ETA 4m00s",
    ]


def test_measured_pace_counts_from_start_and_only_units_done_since():
    clock = Clock()
    progress, _ = plain([si(total=40, seconds_per_unit=100.0)], clock)
    clock.now = 50  # the run began earlier: the pace counts from this generator's start
    progress.start("self_instruct")
    clock.now = 110
    progress.update("self_instruct", 12)
    assert progress.eta("self_instruct") == pytest.approx(60 / 12 * 28)  # measured, not the dry run's 100 s a task
    clock.now = 500  # between updates the ETA stays as of the last one
    assert progress.eta("self_instruct") == pytest.approx(140)
    progress.update("self_instruct", 12)  # no new unit for 390 s: the pace is slower now
    assert progress.eta("self_instruct") == pytest.approx(450 / 12 * 28)


def test_a_resumed_generator_does_not_count_units_done_before_its_start():
    clock = Clock()
    progress, _ = plain([si(total=40)], clock)
    progress.update("self_instruct", 12, 40)  # read back from the last run's files
    progress.start("self_instruct")
    clock.now = 20
    progress.update("self_instruct", 16)
    assert progress.eta("self_instruct") == pytest.approx(20 / 4 * 24)


def test_dry_run_estimate_until_the_generator_has_done_a_unit():
    clock = Clock()
    progress, _ = plain([si(total=10, seconds_per_unit=6.0), evol(total=80, seconds_per_unit=3.0)], clock)
    assert (progress.eta("self_instruct"), progress.eta("evol_instruct")) == (60.0, 240.0)
    assert progress.run_eta() == (300.0, True)
    assert progress.run_eta_text() == "run ETA 5m00s"
    progress.start("self_instruct")
    clock.now = 30
    progress.update("self_instruct", 0)
    assert progress.eta("self_instruct") == 60.0  # still the estimate: nothing measured yet
    clock.now = 40
    progress.update("self_instruct", 5)
    assert progress.eta("self_instruct") == pytest.approx(40.0)  # 8 s a task measured, 5 left
    assert progress.run_eta() == (pytest.approx(280.0), True)
    progress.finish("self_instruct")
    assert progress.run_eta() == (240.0, True)


def test_an_unknown_generator_makes_the_run_eta_a_lower_bound():
    clock = Clock()
    progress, _ = plain([si(total=40), evol(total=80, seconds_per_unit=None)], clock)
    assert progress.run_eta() == (0, False)
    assert progress.run_eta_text() == "run ETA ?"
    progress.start("self_instruct")
    clock.now = 60
    progress.update("self_instruct", 12)
    # Self-Instruct's pace (5 s a task) is not lent to Evol's attempts: the run takes at least Self-Instruct's 140 s.
    assert progress.eta("evol_instruct") is None
    assert progress.run_eta() == (pytest.approx(140.0), False)
    assert progress.run_eta_text() == "run ETA ≥ 2m20s"
    assert progress.line() == ("progress 1m00s: self_instruct 12/40 tasks (ETA 2m20s) | "
                               "evol_instruct waiting 80 attempts | run ETA ≥ 2m20s")


def test_totals_learned_or_changed_mid_run():
    clock = Clock()
    progress, out = plain([si(total=40), evol(total=None, seconds_per_unit=3.0)], clock)
    progress.start("self_instruct")
    assert out.getvalue().endswith("evol_instruct waiting ? attempts | run ETA ?\n")
    clock.now = 60
    progress.update("self_instruct", 12, total=52)  # the target grew
    assert progress.eta("self_instruct") == pytest.approx(60 / 12 * 40)
    progress.update("evol_instruct", 0, total=80)  # Evol learns its rows after Self-Instruct; it stays waiting
    assert progress.run_eta() == (pytest.approx(200.0 + 240.0), True)
    assert progress.line() == ("progress 1m00s: self_instruct 12/52 tasks (ETA 3m20s) | "
                               "evol_instruct waiting 80 attempts | run ETA 7m20s")
    progress.update("self_instruct", 12)  # no total: the last one stands
    assert progress.eta("self_instruct") == pytest.approx(200.0)


def test_plain_output_has_no_control_characters_and_logs_are_plain_lines():
    clock = Clock()
    progress, out = plain([si(), evol(), GeneratorPlan("pair_synthesis:political_promises", "pairs", 30, 2.0)], clock)
    with progress:
        progress.start("self_instruct")
        progress.log("kept 3 [bold]tasks[/bold] from seeds/x.jsonl")
        clock.now = 5
        progress.update("self_instruct", 40)
        progress.finish("self_instruct")
    text = out.getvalue()
    assert not ANSI.search(text) and "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines[1] == "kept 3 [bold]tasks[/bold] from seeds/x.jsonl"  # markup is not read from a log message
    assert len(lines) == 3  # each progress line stays one line on a 60-column console
    assert lines[2] == ("progress 5s: self_instruct done 40/40 tasks in 5s | evol_instruct waiting 80 attempts"
                        " | pair_synthesis:political_promises waiting 30 pairs | run ETA 5m00s")


def last_frame(raw: str) -> list[str]:
    """The live display's last drawing: what follows the last erased line, without colour codes."""
    return [line.rstrip() for line in ANSI.sub("", raw.split("\x1b[2K")[-1]).splitlines() if line.strip()]


def test_a_terminal_gets_a_row_per_generator_and_one_for_the_run():
    clock = Clock()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=110)
    plan = [si(), evol(), GeneratorPlan("flan", "rows", None)]
    with RunProgress(plan, console=console, clock=clock) as progress:
        assert progress.interactive
        progress.start("self_instruct")
        clock.now = 100
        progress.update("self_instruct", 40)
        progress.finish("self_instruct")
        progress.start("evol_instruct")
        clock.now = 130
        progress.update("evol_instruct", 20)
        progress.log("evol: round 1 done")
    frame = last_frame(out.getvalue())
    assert len(frame) == 4
    for line, name, count, eta in zip(frame, ("self_instruct", "evol_instruct", "flan", "run"),
                                      ("40/40 tasks", "20/80 attempts", "waiting ? rows", "1/3 generators"),
                                      ("done in 1m40s", "ETA 1m30s", "", "ETA ≥ 1m30s"), strict=True):
        assert line.startswith(name + " ") and count in line and line.endswith(eta or count)
    assert "evol: round 1 done" in ANSI.sub("", out.getvalue())


def test_interactive_follows_the_console_unless_told():
    clock = Clock()
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert RunProgress([si()], console=terminal, clock=clock).interactive
    assert not RunProgress([si()], console=terminal, clock=clock, interactive=False).interactive
    progress, _ = plain([si()], clock)
    assert not progress.interactive


def test_names_outside_the_plan_or_repeated_are_refused():
    clock = Clock()
    progress, _ = plain([si()], clock)
    with pytest.raises(ValueError, match="'flan' is not in the progress plan"):
        progress.start("flan")
    with pytest.raises(ValueError, match="repeat"):
        plain([si(), si()], clock)
