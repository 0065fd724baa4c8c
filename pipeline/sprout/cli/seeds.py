"""`sprout seeds check`: validate seed files before a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def seeds_check(paths: Annotated[list[Path], typer.Argument(help="Seed files (JSONL or JSON array).")]) -> None:
    """Validate seed files: every bad line is listed as file:line; exit 2 if any."""
    from sprout.core.seeds import load_seeds, summarize

    tasks = load_seeds(paths)
    counts = summarize(tasks)
    print(f"ok: {counts['tasks']} tasks ({counts['classification']} classification, {counts['generation']} "
          f"generation), {counts['instances']} instances, {counts['with_input']} tasks with input")


def register(app: typer.Typer) -> None:
    seeds = typer.Typer(no_args_is_help=True, help="Check seed files.")
    seeds.command("check")(seeds_check)
    app.add_typer(seeds, name="seeds")
