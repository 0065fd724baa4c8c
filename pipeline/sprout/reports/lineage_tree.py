"""`sprout show ID`: one record's family tree in a run — its ancestors (parent ids, up to the seed or source) and
every record evolved from it, accepted or rejected, with the operation and round of each step."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sprout.core.errors import UserError

EVOLVING = {"evol_instruct"}  # generators whose parent_ids[0] is the record a record was made from


def load_run_records(run_dir: Path) -> dict[str, tuple[dict, str]]:
    """id -> (record, status) where status is "accepted" or "rejected: <rule>"; unreadable lines are skipped."""
    found: dict[str, tuple[dict, str]] = {}
    for name in ("examples.jsonl", "rejected.jsonl"):
        path = Path(run_dir) / name
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                record = row.get("record", row)
                status = "accepted" if name == "examples.jsonl" else f"rejected: {row.get('rule')}"
                if record.get("id"):
                    found.setdefault(record["id"], (record, status))
    return found


def family_tree(run_dir: Path, record_id: str) -> list[str]:
    records = load_run_records(run_dir)
    if not records:
        raise UserError(f"{run_dir}: no examples.jsonl or rejected.jsonl here; pass a run directory (--run).")
    matches = [rid for rid in records if rid.startswith(record_id)]
    if len(matches) != 1:
        what = "no record" if not matches else f"{len(matches)} records"
        raise UserError(f"{what} in {run_dir} with an id starting {record_id!r}; give more of the id.")
    children = defaultdict(list)
    for rid, (record, _) in records.items():
        lineage = record.get("lineage", {})
        if lineage.get("generator") in EVOLVING and lineage.get("parent_ids"):
            children[lineage["parent_ids"][0]].append(rid)

    def describe(rid: str) -> str:
        if rid not in records:
            return f"{rid}  (a source or seed; not in this run's files)"
        record, status = records[rid]
        lineage = record.get("lineage", {})
        step = f"{lineage.get('generator')}/{lineage.get('operation')} round {lineage.get('round')}"
        return f"{rid}  [{step}; {status}]  {record.get('instruction', '')[:100]!r}"

    chain, current = [], matches[0]
    while True:  # walk up through evolution steps: an evolution's parent_ids[0] is what it was evolved from
        chain.append(current)
        lineage = records.get(current, ({}, ""))[0].get("lineage", {})
        # Other generators' parent_ids are the tasks their prompt showed (context), not ancestors: the tree's root.
        if lineage.get("generator") not in EVOLVING or not lineage.get("parent_ids"):
            break
        current = lineage["parent_ids"][0]
        if current in chain:
            break
    lines = [("  " * depth) + describe(rid) for depth, rid in enumerate(reversed(chain))]

    def descend(rid: str, depth: int) -> None:
        for child in children.get(rid, []):
            lines.append(("  " * depth) + describe(child))
            descend(child, depth + 1)

    descend(matches[0], len(chain))
    return lines
