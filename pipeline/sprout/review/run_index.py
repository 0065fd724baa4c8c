"""A run as one SQLite database, for the inspector and for Datasette (`sprout inspect --sqlite FILE`).

- `rows`: every accepted record (examples.jsonl) and every reject (rejected.jsonl), one row each, with the columns
  people facet on (status, generator, operation, round, stage, rule, label) indexed, and the whole record as JSON;
  views `records` and `rejects` split them;
- `rows_fts`: full-text search over the texts, the reject reason, the raw model reply and the id (FTS5, which
  Datasette finds by its name);
- `edges`: lineage, child -> parent: `evolved_from` (an evolution's parent), `context` (tasks a prompt showed),
  `seed` (the seed tasks it was grown from);
- `meta`: report.json and the fingerprint of the files the index was built from.

The inspector keeps its index beside the run (`.sprout-inspect.sqlite`) and rebuilds it when examples.jsonl,
rejected.jsonl or report.json change; it is built in a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from sprout.core.errors import UserError
from sprout.reports.lineage_tree import EVOLVING

INDEX_NAME = ".sprout-inspect.sqlite"
SOURCES = ("examples.jsonl", "rejected.jsonl", "report.json")
FACETS = ("status", "generator", "operation", "round", "stage", "rule", "label")
TEXTS = ("instruction", "input", "output", "reason", "raw", "id")

SCHEMA = """
CREATE TABLE rows (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, status TEXT NOT NULL, file TEXT, line INTEGER,
  generator TEXT, operation TEXT, round INTEGER, stage TEXT, rule TEXT, reason TEXT, score REAL, label TEXT,
  kind TEXT, task_id TEXT, parent_id TEXT, root_id TEXT, neighbour_id TEXT, neighbour TEXT,
  instruction TEXT, input TEXT, output TEXT, raw TEXT, record TEXT);
CREATE VIRTUAL TABLE rows_fts USING fts5(instruction, input, output, reason, raw, id, content='rows',
  content_rowid='rowid');
CREATE TABLE edges (child TEXT NOT NULL, parent TEXT NOT NULL, relation TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE VIEW records AS SELECT * FROM rows WHERE status = 'accepted';
CREATE VIEW rejects AS SELECT * FROM rows WHERE status = 'rejected';
"""
INDEXES = [f"CREATE INDEX rows_{c} ON rows({c})" for c in ("id", *FACETS[1:], "parent_id")] + [
    "CREATE INDEX edges_child ON edges(child)", "CREATE INDEX edges_parent ON edges(parent)"]


def check_run_dir(run_dir: Path) -> None:
    if not (Path(run_dir) / "examples.jsonl").is_file() and not (Path(run_dir) / "rejected.jsonl").is_file():
        raise UserError(f"{run_dir}: no examples.jsonl or rejected.jsonl here. Fix: pass the out_dir of a sprout run "
                        "(data, filter, evolve, synth or templates expand), e.g. out/data.")


def fingerprint(run_dir: Path) -> str:
    parts = []
    for name in SOURCES:
        path = Path(run_dir) / name
        stat = path.stat() if path.exists() else None
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{name}:-")
    return "|".join(parts)


def open_index(run_dir: Path) -> sqlite3.Connection:
    """The run's index, rebuilt first if the run's files changed since it was built."""
    check_run_dir(run_dir)
    path = Path(run_dir) / INDEX_NAME
    if path.exists():
        try:
            conn = connect(path)
            if meta(conn, "fingerprint") == fingerprint(run_dir):
                return conn
            conn.close()
        except sqlite3.DatabaseError:
            pass  # an index from an older sprout, or a torn one: build it again
    build_index(run_dir, path)
    return connect(path)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def meta(conn: sqlite3.Connection, key: str):
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def build_index(run_dir: Path, target: Path) -> Path:
    """Write the database of `run_dir` to `target` (through a temporary file: a reader never sees half of it)."""
    run_dir, target = Path(run_dir), Path(target)
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    staging.unlink(missing_ok=True)
    stamp = fingerprint(run_dir)  # before reading: a file that changes meanwhile makes the next open rebuild
    conn = sqlite3.connect(staging)
    try:
        conn.executescript(SCHEMA)
        unreadable = {}
        for name, status in (("examples.jsonl", "accepted"), ("rejected.jsonl", "rejected")):
            unreadable[name] = _load(conn, run_dir / name, status)
        for statement in INDEXES:
            conn.execute(statement)
        conn.execute("INSERT INTO rows_fts(rows_fts) VALUES ('rebuild')")
        report_path = run_dir / "report.json"
        try:
            report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
        except json.JSONDecodeError:
            report = None  # a torn report.json: the page says "no report.json" rather than failing
        for key, value in (("fingerprint", stamp), ("run_dir", str(run_dir.resolve())), ("report", report),
                           ("unreadable_lines", unreadable)):
            conn.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value, ensure_ascii=False)))
        conn.commit()
    finally:
        conn.close()
    os.replace(staging, target)
    return target


def _load(conn: sqlite3.Connection, path: Path, status: str) -> int:
    """Insert a JSONL file's rows; returns how many lines were not JSON records (a run killed mid-line)."""
    if not path.exists():
        return 0
    unreadable, rows, edges = 0, [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
                record = row["record"] if status == "rejected" else row
                columns, found = _columns(row, record, status, path.name, number), _edges(record)
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
                unreadable += 1  # torn by a kill, or not a sprout record: counted, shown in the summary
                continue
            rows.append(columns)
            edges.extend(found)
            if len(rows) >= 5000:
                _insert(conn, rows, edges)
    _insert(conn, rows, edges)
    return unreadable


def _columns(row: dict, record: dict, status: str, file: str, line: int) -> tuple:
    """The row's columns; a field of the wrong type (a list where text belongs) raises TypeError."""
    lineage = record.get("lineage") or {}
    parents = lineage.get("parent_ids") or []
    evolved = lineage.get("generator") in EVOLVING and parents
    neighbour = row.get("neighbour") if status == "rejected" else None
    stage = row.get("stage") if status == "rejected" else lineage.get("stage")
    columns = (record.get("id") or "", status, file, line, lineage.get("generator"), lineage.get("operation"),
               lineage.get("round"), stage, row.get("rule") if status == "rejected" else None,
               row.get("reason") if status == "rejected" else None,
               row.get("score") if status == "rejected" else None,
               record.get("label"), record.get("kind"), lineage.get("task_id"), parents[0] if evolved else None,
               lineage.get("root_id"), (neighbour or {}).get("id"),
               json.dumps(neighbour, ensure_ascii=False) if neighbour else None,
               *(_text(record.get(f)) for f in ("instruction", "input", "output")), record.get("raw"),
               json.dumps(record, ensure_ascii=False))
    if not all(value is None or isinstance(value, (str, int, float)) for value in columns):
        raise TypeError(f"{file}:{line}: a field of the wrong type")
    return columns


def _text(value) -> str:
    if value is not None and not isinstance(value, str):
        raise TypeError("not text")
    return value or ""


def _edges(record: dict) -> list[tuple[str, str, str]]:
    lineage, child = record.get("lineage") or {}, record.get("id") or ""
    parents = lineage.get("parent_ids") or []
    evolving = lineage.get("generator") in EVOLVING
    edges = [(child, p, "evolved_from" if evolving and i == 0 else "context") for i, p in enumerate(parents)]
    return edges + [(child, s, "seed") for s in lineage.get("seed_ids") or []]


def _insert(conn: sqlite3.Connection, rows: list[tuple], edges: list[tuple]) -> None:
    conn.executemany(f"INSERT INTO rows (id, status, file, line, generator, operation, round, stage, rule, reason, "
                     f"score, label, kind, task_id, parent_id, root_id, neighbour_id, neighbour, instruction, input, "
                     f"output, raw, record) VALUES ({', '.join('?' * 23)})", rows)
    conn.executemany("INSERT INTO edges VALUES (?, ?, ?)", edges)
    rows.clear()
    edges.clear()


def report_counts(report: dict | None) -> dict:
    """What report.json says the files hold: accepted and rejected totals, and drops per rule (summed over the
    stages a rule runs in), for the page to set beside its own counts."""
    if not report:
        return {}
    rules: dict[str, int] = {}
    for counts in (report.get("stages") or {}).values():
        for rule, n in (counts.get("rules") or {}).items():
            if n.get("dropped"):
                rules[rule] = rules.get(rule, 0) + n["dropped"]
    return {"accepted": report.get("examples"), "rejected": report.get("rejected"), "rule": rules}
