"""A reviewer's marks: good or bad, with an optional note, keyed by the record's content id (its hash of
instruction, input and output), so a mark holds for the same record in a rerun or another run.

The marks file is an append-only JSONL log, one mark a line, the last line for an id wins (`mark: null` clears it).
Each line is flushed and fsynced before the page is told it is saved: a killed server loses no saved mark, and a torn
last line (a kill mid-write) is skipped when read back."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sprout.core.errors import UserError

MARKS = ("good", "bad")
DEFAULT_MARKS = "marks.jsonl"


def read_marks(path: Path) -> dict[str, dict]:
    """id -> {"mark", "note", "at"} for every id whose last line sets a mark."""
    marks: dict[str, dict] = {}
    if not Path(path).exists():
        return marks
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line: the write it belonged to was never confirmed
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise UserError(f"{path}:{number}: a marks line needs an \"id\" (a record's content id). Fix: remove "
                                "the line, or pass the marks file sprout inspect wrote (--marks).")
            if row.get("mark") is None:
                marks.pop(row["id"], None)
            elif row["mark"] in MARKS:
                marks[row["id"]] = {"mark": row["mark"], "note": row.get("note") or "", "at": row.get("at")}
            else:
                raise UserError(f"{path}:{number}: mark {row['mark']!r} is not one of good, bad or null. Fix: correct "
                                "or remove the line.")
    return marks


def append_mark(path: Path, record_id: str, mark: str | None, note: str = "") -> dict:
    if mark is not None and mark not in MARKS:
        raise ValueError(f"mark must be good, bad or None, not {mark!r}")
    row = {"id": record_id, "mark": mark, "note": note or "", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        _end_torn_line(handle, path)
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return row


def _end_torn_line(handle, path: Path) -> None:
    """A kill mid-write can leave a last line without its newline: end it, so the next mark starts a line."""
    size = Path(path).stat().st_size
    if size:
        with open(path, "rb") as reader:
            reader.seek(size - 1)
            if reader.read(1) != b"\n":
                handle.write("\n")
