"""The one-screen summary printed at the end of a run: the funnel per stage and rule, tokens, time, outputs."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sprout.run_data import RunSummary


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def print_summary(summary: RunSummary, console: Console) -> None:
    grown = f"{summary.new_tasks}/{summary.target} new tasks, " if summary.target else ""
    head = (f"[bold]sprout[/] — {grown}{summary.examples} examples, {summary.rejected} rejected, "
            f"{summary.batches} batches, {summary.seconds:.0f} s")
    if summary.stopped_early:
        head += " [yellow](stopped at max_batches)[/]"
    console.print(head)
    table = Table(title="Filter funnel (each rule: candidates it checked, and dropped)", title_justify="left")
    for column in ("stage", "rule", "checked", "dropped", "pass rate"):
        table.add_column(column, justify="left" if column in ("stage", "rule") else "right")
    for stage, counts in summary.stages.items():
        for rule, tally in counts["rules"].items():
            checked, dropped = tally["checked"], tally["dropped"]
            table.add_row(stage, rule, str(checked), str(dropped), _pct(checked - dropped, checked))
        table.add_row(stage, "[bold]accepted[/]", str(counts["entered"]), str(counts["entered"] - counts["accepted"]),
                      _pct(counts["accepted"], counts["entered"]), end_section=True)
    console.print(table)
    usage = summary.usage
    if usage:  # a `sprout filter` run without judges calls no model
        console.print(f"Model calls: {usage['calls']} new, {usage['cache_hits']} from cache · tokens in/out: "
                      f"{usage['prompt_tokens']}/{usage['completion_tokens']} new, "
                      f"{usage['cached_prompt_tokens']}/{usage['cached_completion_tokens']} cached")
    console.print(f"Outputs: {summary.out_dir}/examples.jsonl · rejected.jsonl · report.json · report.md · "
                  "report.html")
