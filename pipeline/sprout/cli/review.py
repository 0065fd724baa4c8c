"""Commands for people who review data: `inspect` (a local page over a run: browse, facet, search, why a row was
dropped, lineage, marks, a rule audit; or a SQLite export for Datasette) and `curate` (the dataset the marks make)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from sprout.core.errors import UserError


def inspect(
    run_dir: Annotated[Path, typer.Argument(help="A run's out_dir (data, filter, evolve, synth, templates expand).")],
    marks: Annotated[Path | None, typer.Option(help="Marks file to read and write (default RUN_DIR/marks.jsonl).")]
    = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in the default browser.")]
    = False,
    audit: Annotated[int | None, typer.Option("--audit", metavar="N", help="Draw N rejects per rule and N accepted "
                                              "rows per generator to mark (kept in RUN_DIR/audit.json).")] = None,
    audit_seed: Annotated[int, typer.Option(help="Seed of the audit sample.")] = 0,
    audit_report: Annotated[bool, typer.Option("--audit-report", help="Write the audit's figures from the marks so "
                                               "far (RUN_DIR/audit_report.json and .md) and exit.")] = False,
    sqlite: Annotated[Path | None, typer.Option("--sqlite", metavar="FILE", help="Write the run as a SQLite "
                                                "database (rows, rejects, lineage edges, full-text search) for "
                                                "Datasette, and exit.")] = None,
) -> None:
    """Look at what a run made and dropped on a local page: facets, search, why a row was dropped and what it was
    compared with, lineage chains, good/bad marks. Offline; nothing is fetched."""
    from sprout.review import audit as audits
    from sprout.review.marks import DEFAULT_MARKS, read_marks
    from sprout.review.run_index import build_index, check_run_dir, open_index

    check_run_dir(run_dir)
    marks_path = marks or run_dir / DEFAULT_MARKS
    if sqlite is not None:
        staging = build_index(run_dir, sqlite.with_name(f".{sqlite.name}.building"))
        _add_marks(staging, read_marks(marks_path))
        shutil.move(staging, sqlite)
        print(f"{sqlite}: open it with `datasette {sqlite}` (tables rows, edges, meta; views records, rejects; "
              "full-text search on rows).")
        return
    if audit_report:  # the sample and the marks are enough: no index (seconds at 100k rows) to build
        sample = audits.load_sample(run_dir)
        if sample is None:
            raise UserError(f"{run_dir}: no audit sample yet. Fix: `sprout inspect {run_dir} --audit 20`, mark the "
                            "sampled rows, then --audit-report.")
        report = audits.audit_report(sample, read_marks(marks_path))
        from sprout.io.jsonl import atomic_write

        atomic_write(run_dir / "audit_report.json", json.dumps(report, indent=2) + "\n")
        text = audits.audit_markdown(report)
        atomic_write(run_dir / "audit_report.md", text)
        print(text)
        return
    conn = open_index(run_dir)
    sample = audits.load_or_draw(run_dir, conn, audit, audit_seed) if audit is not None else \
        audits.load_sample(run_dir)
    serve(run_dir, conn, marks_path, sample, port, open_browser)


def serve(run_dir: Path, conn, marks_path: Path, sample, port: int, open_browser: bool) -> None:
    from sprout.review.server import Inspector, make_server

    server = make_server(Inspector(run_dir, conn, marks_path, sample), port=port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"sprout inspect: {url}  (marks go to {marks_path}; Ctrl-C stops)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _add_marks(path: Path, marks: dict) -> None:
    """The marks as a table of the export, so a Datasette user sees them beside the rows."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE marks (id TEXT, status TEXT, mark TEXT, note TEXT, at TEXT, PRIMARY KEY (id, status))")
    conn.executemany("INSERT INTO marks VALUES (?, ?, ?, ?, ?)",
                     [(i, status, m["mark"], m["note"], m["at"]) for (i, status), m in marks.items()])
    conn.commit()
    conn.close()


def curate(
    run_dir: Annotated[Path, typer.Argument(help="The run the marks were made on.")],
    out: Annotated[Path, typer.Option(help="The curated dataset (sprout records, JSONL).")],
    marks: Annotated[Path | None, typer.Option(help="Marks file (default RUN_DIR/marks.jsonl).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Write the curated dataset: accepted records minus those marked bad, plus rejected ones marked good, with a
    report of what the marks changed (OUT.report.json, OUT.report.md)."""
    from sprout.review.curate import curate as run_curate
    from sprout.review.curate import describe
    from sprout.review.marks import DEFAULT_MARKS

    print(describe(run_curate(run_dir, marks or run_dir / DEFAULT_MARKS, out, force=force)))


def register(app: typer.Typer) -> None:
    app.command()(inspect)
    app.command()(curate)
