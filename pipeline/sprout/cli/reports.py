"""Commands that read a finished run: `show` (a record's family tree) and `report` (regenerate the reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sprout.core.errors import UserError


def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="A record id (a unique prefix is enough).")],
    run: Annotated[Path, typer.Option(help="The run directory to look in.")] = Path("out/data"),
) -> None:
    """Print a record's family tree: its ancestors and everything evolved from it, with operation and round."""
    from sprout.reports.lineage_tree import family_tree

    lines = family_tree(run, record_id)
    print("\n".join(lines))


def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (holds report.json).")]) -> None:
    """Regenerate a run's report: report.json (enriched), report.md and a self-contained report.html."""
    from sprout.reports.report import write_reports

    if not (run_dir / "report.json").is_file():
        raise UserError(f"{run_dir}: no report.json here; pass a run directory such as out/data.")
    paths = write_reports(run_dir)
    for path in paths:
        print(path)


def register(app: typer.Typer) -> None:
    app.command()(show)
    app.command()(report)
