"""The `sprout` command. User errors print one message and exit 2; nothing here prints a traceback for them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from sprout.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Grow a seed set into an instruction-tuning dataset, filter it, and fine-tune on it.")
seeds_app = typer.Typer(no_args_is_help=True, help="Check seed files.")
model_app = typer.Typer(no_args_is_help=True, help="Manage the embedded model.")
app.add_typer(seeds_app, name="seeds")
app.add_typer(model_app, name="model")
console = Console(stderr=True)


def _fail(error: UserError) -> None:
    console.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
    for detail in error.details:
        console.print(f"  {detail}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def data(
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config (YAML).")] = Path("configs/data.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE (dotted key).")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Discard an existing run in out_dir made by another config.")] = False,
) -> None:
    """Grow the seed set with the configured generators, filter it, and write examples, rejects and a report."""
    from sprout.config import load_config
    from sprout.run_data import run_data
    from sprout.summary import print_summary

    try:
        cfg = load_config(config, set_)
        columns = (TextColumn("new tasks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("grow", total=cfg.generators.self_instruct.target)
            summary = run_data(cfg, force=force, progress=lambda done, total: bar.update(task, completed=done),
                               log=bar.console.print)
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@app.command()
def dedup(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help=".txt (one per line), .jsonl or .json array")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the kept rows go (same format as INPUT).")],
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drop if ROUGE-L F > this.")] = 0.7,
    field: Annotated[str | None, typer.Option(help="JSON field to compare (default: instruction).")] = None,
    tokenizer: Annotated[str, typer.Option(help="rouge (as rouge-score) or unicode (for non-Latin text).")] = "rouge",
) -> None:
    """Greedy ROUGE-L near-duplicate removal in file order, with exactly rouge-score's decisions."""
    from sprout.run_filter import run_dedup

    try:
        if tokenizer not in ("rouge", "unicode"):
            raise UserError(f"--tokenizer {tokenizer!r}: use rouge or unicode.")
        result = run_dedup(input_path, out, threshold, field, tokenizer)
    except UserError as error:
        _fail(error)
    print(f"read {result['read']}, kept {result['kept']}, dropped {result['dropped']} "
          f"(ROUGE-L > {threshold}) in {result['seconds']:.2f} s -> {result['output']}; dropped: {result['rejects']}")


@app.command("filter")
def filter_(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Records or Alpaca rows (.jsonl / .json).")],
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/filter.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
) -> None:
    """Run the whole filter stage over an existing dataset: kept rows, rejects with reasons, and the report."""
    from sprout.config import load_config
    from sprout.run_filter import FilterRunConfig, run_filter
    from sprout.summary import print_summary

    try:
        summary = run_filter(input_path, load_config(config, set_, model=FilterRunConfig),
                             log=lambda message: console.print(message))
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@app.command()
def evolve(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="Alpaca rows or sprout records to evolve.")],
    rounds: Annotated[int | None, typer.Option(min=1, help="Evolution rounds (default: the config's).")] = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/evolve.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Discard an existing run in out_dir made by another config.")] = False,
) -> None:
    """Evol-Instruct over an existing dataset: harder and rarer instructions, with the paper's elimination."""
    from sprout.config import load_config
    from sprout.run_evolve import EvolveRunConfig, run_evolve
    from sprout.summary import print_summary

    overrides = [*set_, f"input={input_path}", *([f"evol_instruct.rounds={rounds}"] if rounds else [])]
    try:
        cfg = load_config(config, overrides, model=EvolveRunConfig)
        columns = (TextColumn("rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("evolve", total=cfg.evol_instruct.rounds)
            summary = run_evolve(cfg, force=force, progress=lambda done, total: bar.update(task, completed=done),
                                 log=bar.console.print)
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="A record id (a unique prefix is enough).")],
    run: Annotated[Path, typer.Option(help="The run directory to look in.")] = Path("out/data"),
) -> None:
    """Print a record's family tree: its ancestors and everything evolved from it, with operation and round."""
    from sprout.lineage_tree import family_tree

    try:
        lines = family_tree(run, record_id)
    except UserError as error:
        _fail(error)
    print("\n".join(lines))


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (holds report.json).")]) -> None:
    """Regenerate a run's report: report.json (enriched), report.md and a self-contained report.html."""
    from sprout.report import write_reports

    try:
        if not (run_dir / "report.json").is_file():
            raise UserError(f"{run_dir}: no report.json here; pass a run directory such as out/data.")
        paths = write_reports(run_dir)
    except UserError as error:
        _fail(error)
    for path in paths:
        print(path)


@seeds_app.command("check")
def seeds_check(paths: Annotated[list[Path], typer.Argument(help="Seed files (JSONL or JSON array).")]) -> None:
    """Validate seed files: every bad line is listed as file:line; exit 2 if any."""
    from sprout.seeds import load_seeds, summarize

    try:
        tasks = load_seeds(paths)
    except UserError as error:
        _fail(error)
    counts = summarize(tasks)
    print(f"ok: {counts['tasks']} tasks ({counts['classification']} classification, {counts['generation']} "
          f"generation), {counts['instances']} instances, {counts['with_input']} tasks with input")


@model_app.command("prepare")
def model_prepare() -> None:
    """Convert the embedded GGUF model to a safetensors folder once (later loads take ~0.1 s)."""
    from sprout.model_store import prepare_embedded

    try:
        path = prepare_embedded(log=lambda message: console.print(message))
    except UserError as error:
        _fail(error)
    print(path)

