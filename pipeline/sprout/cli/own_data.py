"""Commands for a dataset you already have: `filter` (the whole filter stage), `dedup` (ROUGE-L near-duplicates)
and `decontaminate` (n-gram overlap with eval sets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sprout.cli.shared import console
from sprout.core.errors import UserError


def filter_(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Records or Alpaca rows (.jsonl / .json).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: the config's out_dir).")]
    = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/filter.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
) -> None:
    """Run the whole filter stage over an existing dataset (Alpaca rows, `messages` rows or sprout records): kept
    rows (as records, and as you wrote them in kept.jsonl/.json), rejects with reasons, and the report."""
    from sprout.config.loader import load_config
    from sprout.reports.summary import print_summary
    from sprout.runs.filter import FilterRunConfig, run_filter

    options = {f"out_dir={out}": "--out"} if out else None
    summary = run_filter(input_path, load_config(config, set_, model=FilterRunConfig, options=options),
                         log=lambda message: console.print(message))
    print_summary(summary, Console())


def dedup(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help=".txt (one per line), .jsonl or .json array")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the kept rows go (same format as INPUT).")],
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drop if ROUGE-L F > this.")] = 0.7,
    on: Annotated[str | None, typer.Option(help="Rows (Alpaca, messages, sprout records): what to compare. all "
                                           "(default): a near-duplicate is alike in instruction, input AND output; "
                                           "instruction+input; instruction (Self-Instruct's task-level rule).")]
    = None,
    field: Annotated[str | None, typer.Option(help="Compare one JSON field instead (any JSON objects).")] = None,
    tokenizer: Annotated[str, typer.Option(help="rouge (as rouge-score) or unicode (for non-Latin text).")] = "rouge",
) -> None:
    """Greedy ROUGE-L near-duplicate removal in file order, with exactly rouge-score's decisions (per field)."""
    from sprout.filters.row_index import FIELDS
    from sprout.runs.filter import run_dedup

    if tokenizer not in ("rouge", "unicode"):
        raise UserError(f"--tokenizer {tokenizer!r}: use rouge or unicode.")
    if on is not None and on not in FIELDS:
        raise UserError(f"--on {on!r}: use {', '.join(FIELDS)}.")
    result = run_dedup(input_path, out, threshold, field, tokenizer, on)
    compared = result["compared"]
    compared = "+".join(compared) + (" (each field)" if len(compared) > 1 else "") if isinstance(compared, tuple) \
        else compared
    print(f"read {result['read']}, kept {result['kept']}, dropped {result['dropped']} "
          f"(ROUGE-L > {threshold} on {compared}) in {result['seconds']:.2f} s -> {result['output']}; dropped: "
          f"{result['rejects']}")
    if 2 * result["dropped"] > result["read"]:  # a user's dataset is precious: most of it going is said loudly
        fix = "--on all (each field must match) or " if isinstance(result["compared"], tuple) and len(
            result["compared"]) < 3 else ""
        console.print(f"[bold yellow]warning:[/] more than half of the rows were dropped as near-duplicates "
                      f"({result['dropped']} of {result['read']}); if that is not what you want, try {fix}a higher "
                      "--threshold, and look at the matches in the rejects file.", highlight=False)


def decontaminate(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Records, Alpaca rows (.jsonl / .json) or .txt")],
    against: Annotated[list[Path], typer.Option("--against", "-a", help="An eval file (.jsonl, .json array, .txt "
                                                "one item a line); repeat for more.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Tokens per n-gram.")] = 13,
    min_tokens: Annotated[int, typer.Option(min=1, help="Eval texts shorter than n but this long must appear whole; "
                                            "shorter ones are not indexed.")] = 8,
    field: Annotated[list[str] | None, typer.Option("--field", help="Row field to check; repeat for more "
                                                    "(default: instruction and input).")] = None,
    eval_field: Annotated[str | None, typer.Option(help="Index only this field of each eval item (default: every "
                                                   "string in it, nested ones too).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Kept rows, in INPUT's format (default: "
                                             "INPUT.decontaminated.EXT beside INPUT).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Drop rows whose instruction or input shares an n-gram (13 tokens by default; case, punctuation and spacing
    ignored) with an item of the eval files; dropped rows with the matching n-gram and eval item go to
    OUT.rejected.jsonl, counts to OUT.report.json and .md."""
    from sprout.runs.decontaminate import run_decontaminate, side_paths

    report = run_decontaminate(input_path, against, out, n, min_tokens, tuple(field or ()), eval_field, force)
    per_file = ", ".join(f"{Path(f['file']).name} {f['dropped']}" for f in report["eval_files"])
    print(f"read {report['read']}, kept {report['kept']}, dropped {report['dropped']} ({n}-gram overlap; by eval "
          f"file: {per_file}) in {sum(report['seconds'].values()):.2f} s -> {report['output']}; dropped: "
          f"{report['rejects']}; report: {side_paths(Path(report['output']))['report_md']}")


def register(app: typer.Typer) -> None:
    app.command("filter")(filter_)
    app.command()(dedup)
    app.command()(decontaminate)
