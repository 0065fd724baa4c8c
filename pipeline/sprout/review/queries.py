"""What the inspector page asks of a run's index: a page of rows under facets and a search, the counts of every
facet value, and one row in full (why it was dropped, its near-duplicate neighbour, its lineage chain)."""

from __future__ import annotations

import json
import re
import sqlite3

from sprout.review.run_index import FACETS, meta, report_counts
from sprout.review.word_diff import word_diff

MARK_FILTERS = ("good", "bad", "unmarked")
PAGE_MAX = 500
LIST_TEXT = 240  # characters of each text a list row carries; the detail view has the whole row


class Marks:
    """The marks the page shows, kept in a table of the index so facets and filters can join them."""

    def __init__(self, conn: sqlite3.Connection, marks: dict[tuple[str, str], dict]):
        self.conn = conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS marks (id TEXT, status TEXT, mark TEXT, note TEXT, "
                     "PRIMARY KEY (id, status))")
        conn.execute("DELETE FROM temp.marks")
        conn.executemany("INSERT INTO temp.marks VALUES (?, ?, ?, ?)",
                         [(i, status, m["mark"], m["note"]) for (i, status), m in marks.items()])

    def set(self, record_id: str, status: str, mark: str | None, note: str) -> None:
        if mark is None:
            self.conn.execute("DELETE FROM temp.marks WHERE id = ? AND status = ?", (record_id, status))
        else:
            self.conn.execute("INSERT OR REPLACE INTO temp.marks VALUES (?, ?, ?, ?)", (record_id, status, mark, note))


def fts_query(text: str) -> str:
    """Each word a quoted prefix term, all required: any text is a valid query (no FTS syntax to get wrong)."""
    words = re.findall(r"\w+", text)
    return " ".join(f'"{w}"*' for w in words)


def where_clause(filters: dict[str, list[str]], search: str = "", mark: str | None = None,
                 rowids: list[int] | None = None, skip: str | None = None) -> tuple[str, list]:
    """SQL conditions for the filters (values of one facet OR-ed, facets AND-ed), the search, the mark filter and a
    set of rows (the audit sample). `skip`: leave that facet's own filter out (a facet counts as if unfiltered)."""
    parts, params = [], []
    for facet, values in filters.items():
        if facet not in FACETS or facet == skip or not values:
            continue
        nulls = "(none)" in values
        named = [v for v in values if v != "(none)"]
        clause = []
        if named:
            clause.append(f"rows.{facet} IN ({', '.join('?' * len(named))})")
            params.extend(named)
        if nulls:
            clause.append(f"rows.{facet} IS NULL")
        parts.append("(" + " OR ".join(clause) + ")")
    query = fts_query(search)
    if query:
        parts.append("rows.rowid IN (SELECT rowid FROM rows_fts WHERE rows_fts MATCH ?)")
        params.append(query)
    if mark in ("good", "bad"):
        parts.append("EXISTS (SELECT 1 FROM temp.marks AS m WHERE m.id = rows.id AND m.status = rows.status "
                     "AND m.mark = ?)")
        params.append(mark)
    elif mark == "unmarked":
        parts.append("NOT EXISTS (SELECT 1 FROM temp.marks AS m WHERE m.id = rows.id AND m.status = rows.status)")
    if rowids is not None:
        parts.append("rows.rowid IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(rowids))
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def list_rows(conn, filters: dict[str, list[str]], search: str = "", mark: str | None = None, offset: int = 0,
              limit: int = 100, rowids: list[int] | None = None) -> dict:
    where, params = where_clause(filters, search, mark, rowids)
    total = conn.execute(f"SELECT COUNT(*) FROM rows{where}", params).fetchone()[0]
    limit = max(1, min(limit, PAGE_MAX))
    found = conn.execute(
        f"SELECT rows.rowid AS rowid, rows.id, rows.status, generator, operation, round, stage, rule, score, label, "
        f"substr(instruction, 1, {LIST_TEXT}) AS instruction, substr(input, 1, {LIST_TEXT}) AS input, "
        f"substr(output, 1, {LIST_TEXT}) AS output, marks.mark AS mark, marks.note AS note "
        f"FROM rows LEFT JOIN temp.marks AS marks ON marks.id = rows.id AND marks.status = rows.status{where} "
        f"ORDER BY rows.rowid LIMIT ? OFFSET ?",
        [*params, limit, max(0, offset)]).fetchall()
    return {"total": total, "offset": offset, "rows": [dict(r) for r in found],
            "facets": facet_counts(conn, filters, search, mark, rowids)}


def facet_counts(conn, filters, search="", mark=None, rowids=None) -> dict[str, list[list]]:
    counts = {}
    for facet in FACETS:
        where, params = where_clause(filters, search, mark, rowids, skip=facet)
        found = conn.execute(f"SELECT {facet}, COUNT(*) FROM rows{where} GROUP BY {facet} ORDER BY COUNT(*) DESC",
                             params).fetchall()
        counts[facet] = [["(none)" if value is None else str(value), n] for value, n in found]
    where, params = where_clause(filters, search, None, rowids)
    marked = conn.execute(f"SELECT COALESCE(marks.mark, 'unmarked'), COUNT(*) FROM rows LEFT JOIN temp.marks AS marks "
                          f"ON marks.id = rows.id AND marks.status = rows.status{where} GROUP BY 1", params).fetchall()
    counts["mark"] = [[value, n] for value, n in marked]
    return counts


def run_summary(conn) -> dict:
    """Totals of the index beside what report.json says, and how many lines of each file could not be read."""
    totals = dict(conn.execute("SELECT status, COUNT(*) FROM rows GROUP BY status").fetchall())
    rules = dict(conn.execute("SELECT rule, COUNT(*) FROM rows WHERE status = 'rejected' GROUP BY rule").fetchall())
    report = meta(conn, "report")
    expected = report_counts(report)
    return {"run_dir": meta(conn, "run_dir"), "accepted": totals.get("accepted", 0),
            "rejected": totals.get("rejected", 0), "rules": rules, "report": expected,
            "command": (report or {}).get("command"), "unreadable_lines": meta(conn, "unreadable_lines"),
            "mismatches": _mismatches(totals, rules, expected)}


def _mismatches(totals: dict, rules: dict, expected: dict) -> list[str]:
    if not expected:
        return []
    found = []
    for key in ("accepted", "rejected"):
        if expected.get(key) is not None and expected[key] != totals.get(key, 0):
            found.append(f"{key}: {totals.get(key, 0)} rows in the files, {expected[key]} in report.json")
    for rule in sorted(set(rules) | set(expected.get("rule", {}))):
        if rules.get(rule, 0) != expected["rule"].get(rule, 0):
            found.append(f"rule {rule}: {rules.get(rule, 0)} rejects in the file, "
                         f"{expected['rule'].get(rule, 0)} in report.json")
    return found


def row_detail(conn, rowid: int) -> dict | None:
    row = conn.execute("SELECT rows.*, rows.rowid AS rowid, marks.mark AS mark, marks.note AS note FROM rows "
                       "LEFT JOIN temp.marks AS marks ON marks.id = rows.id AND marks.status = rows.status "
                       "WHERE rows.rowid = ?", (rowid,)).fetchone()
    if row is None:
        return None
    detail = {key: row[key] for key in row.keys() if key not in ("record", "neighbour")}
    record = json.loads(row["record"])
    detail["lineage"] = record.get("lineage") or {}
    detail["neighbour"] = _neighbour(conn, row)
    detail["chain"] = _ancestors(conn, row)
    detail["children"] = [_brief(conn, r) for r in conn.execute(
        "SELECT rowid, * FROM rows WHERE parent_id = ? ORDER BY rowid LIMIT 50", (row["id"],))]
    root = conn.execute("SELECT rowid FROM rows WHERE id = ? ORDER BY status = 'accepted' DESC LIMIT 1",
                        (row["root_id"],)).fetchone() if row["root_id"] else None
    detail["root_rowid"] = root[0] if root else None
    detail["contexts"] = [p for (p,) in conn.execute(
        "SELECT parent FROM edges WHERE child = ? AND relation = 'context'", (row["id"],))]
    return detail


def _neighbour(conn, row) -> dict | None:
    """A near-duplicate drop's neighbour: the texts it was compared with (and the row, when it is in this run),
    with the differing words marked, field by field."""
    if not row["neighbour"]:
        return None
    neighbour = json.loads(row["neighbour"])
    fields = neighbour.get("fields") or {}
    found = conn.execute("SELECT rowid FROM rows WHERE id = ? ORDER BY status = 'accepted' DESC LIMIT 1",
                         (neighbour.get("id"),)).fetchone() if neighbour.get("id") else None
    return {"id": neighbour.get("id"), "rowid": found[0] if found else None,
            "diffs": {f: word_diff(row[f] if f in ("instruction", "input", "output") else "", text)
                      for f, text in fields.items()}}


def _ancestors(conn, row) -> list[dict]:
    """From the row up its evolution parents to the root: each step with the words it changed (parent -> child)."""
    chain, current, seen = [], row, {row["id"]}
    while current is not None and current["parent_id"] and current["parent_id"] not in seen:
        parent_id = current["parent_id"]
        seen.add(parent_id)
        parent = conn.execute("SELECT rowid, * FROM rows WHERE id = ? ORDER BY status = 'accepted' DESC LIMIT 1",
                              (parent_id,)).fetchone()
        step = _brief(conn, parent) if parent is not None else {}
        # `operation`: the step's (what made the child from this parent); the rest describes the parent.
        step.update({"child_id": current["id"], "parent_id": parent_id, "in_run": parent is not None,
                     "operation": current["operation"]})
        if parent is not None:
            step["diff"] = word_diff(parent["instruction"], current["instruction"])
        chain.append(step)
        current = parent
    return chain


def _brief(conn, row) -> dict:
    return {"rowid": row["rowid"], "id": row["id"], "status": row["status"], "rule": row["rule"],
            "generator": row["generator"], "operation": row["operation"], "round": row["round"],
            "instruction": row["instruction"][:LIST_TEXT]}


def find_rows(conn, id_prefix: str) -> list[dict]:
    if not re.fullmatch(r"[0-9A-Za-z_:.\-]{1,64}", id_prefix or ""):
        return []
    return [_brief(conn, r) for r in conn.execute("SELECT rowid, * FROM rows WHERE id >= ? AND id < ? ORDER BY rowid "
                                                  "LIMIT 20", (id_prefix, id_prefix + "\uffff"))]
