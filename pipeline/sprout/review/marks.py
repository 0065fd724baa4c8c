"""A reviewer's marks: good or bad, with an optional note, keyed by the record's content id (its hash of
instruction, input and output) and the side it is on (accepted or rejected), so a mark holds for the same record in a
rerun or another run. The side matters where one content is on both: an exact duplicate's reject has the id of the
record that was kept, and "bad" on the duplicate (right to drop it) must not remove the kept one. A line without a
status (written by hand) marks both sides.

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
STATUSES = ("accepted", "rejected")
DEFAULT_MARKS = "marks.jsonl"


def read_marks(path: Path) -> dict[tuple[str, str], dict]:
    """(id, status) -> {"mark", "note", "at"} for every row whose last line sets a mark."""
    marks: dict[tuple[str, str], dict] = {}
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
            sides = [row["status"]] if row.get("status") in STATUSES else list(STATUSES)
            if row.get("mark") is None:
                for side in sides:
                    marks.pop((row["id"], side), None)
            elif row["mark"] in MARKS:
                for side in sides:
                    marks[(row["id"], side)] = {"mark": row["mark"], "note": row.get("note") or "", "at": row.get("at")}
            else:
                raise UserError(f"{path}:{number}: mark {row['mark']!r} is not one of good, bad or null. Fix: correct "
                                "or remove the line.")
    return marks


def append_mark(path: Path, record_id: str, status: str, mark: str | None, note: str = "") -> dict:
    if mark is not None and mark not in MARKS:
        raise ValueError(f"mark must be good, bad or None, not {mark!r}")
    if status not in STATUSES:
        raise ValueError(f"status must be accepted or rejected, not {status!r}")
    row = {"id": record_id, "status": status, "mark": mark, "note": note or "",
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
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
