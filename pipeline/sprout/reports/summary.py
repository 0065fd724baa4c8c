"""The one-screen summary printed at the end of a run: the funnel per stage and rule, tokens, time, outputs."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sprout.runs.context import RunSummary
from sprout.runs.dry_run import Estimate


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
    if summary.evol_rounds:
        print_generations(summary.evol_rounds, console)
    for line in summary.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False)
    usage = summary.usage
    if usage:  # a `sprout filter` run without judges calls no model
        console.print(f"Model calls: {usage['calls']} new, {usage['cache_hits']} from cache · tokens in/out: "
                      f"{usage['prompt_tokens']}/{usage['completion_tokens']} new, "
                      f"{usage['cached_prompt_tokens']}/{usage['cached_completion_tokens']} cached · "
                      f"{usage.get('seconds', 0):.0f} s in model calls")
        if usage.get("failed"):
            reasons = ", ".join(f"{k} {v}" for k, v in usage.get("failures", {}).items())
            console.print(f"[yellow]Failed after retries: {usage['failed']} requests ({reasons}); their candidates "
                          "are backend_error rejects, and a rerun asks for them again.[/]", highlight=False)
        if cost := usage.get("cost"):
            unpriced = f" (no price for {', '.join(cost['unpriced_models'])})" if cost["unpriced_models"] else ""
            console.print(f"Cost: {cost['total']:.4f} {cost['currency']}, {cost['saved_by_cache']:.4f} "
                          f"{cost['currency']} saved by the cache{unpriced}", highlight=False)
    console.print(f"Outputs: {summary.out_dir}/examples.jsonl · rejected.jsonl · report.json · report.md · "
                  "report.html")


def print_generations(evol: dict, console: Console) -> None:
    """Evol-Instruct: each round's attempts and what became of them, and every input row's outcome."""
    table = Table(title="Evol-Instruct generations (one attempt per row per round)", title_justify="left")
    for column in ("round", "attempts", "evolved", "eliminated by", "retried next round", "left out"):
        table.add_column(column, justify="left" if column == "eliminated by" else "right")
    for row in evol["rounds"]:
        eliminated = ", ".join(f"{rule} {n}" for rule, n in row["eliminated"].items()) or "-"
        table.add_row(str(row["round"]), str(row["attempted"]), str(row["evolved"]), eliminated,
                      str(row["retried_next_round"]), str(row["left_out"]))
    console.print(table)
    outcome = evol["outcome"]
    spread = ", ".join(f"{times} rounds: {n}" for times, n in outcome["evolved_in_rounds"].items())
    left = f"; {outcome['left_out']} left out by per_round (never attempted)" if outcome["left_out"] else ""
    console.print(f"Input rows: {outcome['rows']}, by the number of the {outcome['rounds']} rounds their line "
                  f"evolved in: {spread}{left}", highlight=False)


def _round(value: float) -> str:
    return f"{round(value):,}"


def print_estimate(estimate: Estimate, share: float, console: Console) -> None:
    sample, totals, currency = estimate.sample, estimate.totals, estimate.currency
    console.print(f"[bold]sprout dry run[/] — a {share:.0%} sample ran in {sample['seconds']:.0f} s "
                  f"({sample['usage'].get('calls', 0)} model calls, {sample['usage'].get('cache_hits', 0)} from "
                  "cache); work done / planned: "
                  + ", ".join(f"{g} {sample['work'].get(g, 0)}/{n}" for g, n in sample["full_work"].items() if n))
    models = sorted({row["model"] for row in estimate.rows})
    one_model = len(models) == 1  # then the model goes in the title, and the table fits a narrow terminal
    title = "Estimated whole run" + (f" on {models[0]}" if one_model else "")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    columns = ([] if one_model else ["model"]) + ["generator", "scale", "requests", "tokens in", "tokens out",
                                                  "model time"] + ([f"cost ({currency})"] if currency else [])
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "generator") else "right",
                         no_wrap=column == "generator")
    for row in estimate.rows:
        seconds = "?" if row["seconds"] is None else f"{row['seconds']:.0f} s"
        cost = [f"{row['cost']:.4f}" if "cost" in row else "no price"] if currency else []
        table.add_row(*([] if one_model else [row["model"]]), row["generator"], f"x{row['scale']:.1f}",
                      _round(row["requests"]), _round(row["prompt_tokens"]), _round(row["completion_tokens"]),
                      seconds, *cost)
    console.print(table)
    line = (f"Estimate: {_round(totals['requests'])} requests, {_round(totals['prompt_tokens'])} tokens in, "
            f"{_round(totals['completion_tokens'])} out, ")
    if totals["seconds_complete"]:
        line += f"about {totals['seconds'] / 60:.1f} min"
    else:  # cached answers carry no timing
        line += ("time unknown where marked ? (the sample's answers came from the cache; --set cache=NEW_FILE "
                 "times it afresh)")
    if currency:
        line += f", cost about {totals['cost']:.4f} {currency}"
    console.print(line + ". Nothing was written to out_dir.", highlight=False)
