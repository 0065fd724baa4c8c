"""`sprout curate RUN_DIR --marks FILE --out OUT`: the dataset a reviewer's marks make — the run's accepted records
minus those marked bad, plus rejected records marked good (in file order: accepted first, then the rescued
rejects) — and a report of what the marks changed (OUT.report.json and .md beside OUT).

A mark applies to the rows with its content id on its side (accepted or rejected; see marks.py). A rejected record
marked good that is also accepted (the same content dropped once, accepted elsewhere) is not added twice. Marks on
no row of this run are counted and listed: marks made on another run, or on records this run no longer makes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sprout.core.errors import UserError
from sprout.io.jsonl import atomic_write
from sprout.review.marks import read_marks
from sprout.review.run_index import check_run_dir


def _read_jsonl(path: Path, rejected: bool) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run: no record (the report counts it as unreadable)
            record = row.get("record") if rejected and isinstance(row, dict) else row
            if isinstance(record, dict) and record.get("id"):
                rows.append(row)
    return rows


def curate(run_dir: Path, marks_path: Path, out: Path, force: bool = False) -> dict:
    run_dir, marks_path, out = Path(run_dir), Path(marks_path), Path(out)
    check_run_dir(run_dir)
    if not marks_path.is_file():
        raise UserError(f"{marks_path}: no marks file here. Fix: mark rows in `sprout inspect {run_dir}` (it writes "
                        f"{run_dir / 'marks.jsonl'}), or pass --marks FILE.")
    if out.exists() and not force:
        raise UserError(f"{out} exists. Fix: another --out, or --force to replace it.")
    marks = read_marks(marks_path)
    accepted = _read_jsonl(run_dir / "examples.jsonl", rejected=False)
    rejected = _read_jsonl(run_dir / "rejected.jsonl", rejected=True)
    accepted_ids = {r["id"] for r in accepted}

    def mark(record_id: str, status: str) -> str | None:
        return marks.get((record_id, status), {}).get("mark")

    kept = [r for r in accepted if mark(r["id"], "accepted") != "bad"]
    removed = [r for r in accepted if mark(r["id"], "accepted") == "bad"]
    rescued, seen = [], set(accepted_ids)
    for row in rejected:
        record = row["record"]
        if mark(record["id"], "rejected") == "good" and record["id"] not in seen:
            seen.add(record["id"])
            rescued.append(row)
    known = {(i, "accepted") for i in accepted_ids} | {(r["record"]["id"], "rejected") for r in rejected}
    unmatched = sorted(f"{i} ({status})" for i, status in marks if (i, status) not in known)
    records = kept + [r["record"] for r in rescued]
    report = {
        "run_dir": str(run_dir), "marks": str(marks_path), "out": str(out),
        "accepted_before": len(accepted), "written": len(records),
        "removed": len(removed), "added": len(rescued),
        "removed_by_generator": dict(Counter(_generator(r) for r in removed).most_common()),
        "added_by_rule": dict(Counter(r.get("rule") or "(none)" for r in rescued).most_common()),
        "confirmed": {"good_accepted": sum(1 for i in accepted_ids if mark(i, "accepted") == "good"),
                      "bad_rejected": len({r["record"]["id"] for r in rejected
                                           if mark(r["record"]["id"], "rejected") == "bad"})},
        "marks_total": len(marks), "marks_unmatched": len(unmatched), "unmatched_ids": unmatched[:100],
        "removed_ids": [r["id"] for r in removed], "added_ids": [r["record"]["id"] for r in rescued],
        "notes": {f"{i} ({status})": m["note"] for (i, status), m in marks.items()
                  if m.get("note") and (i, status) in known},
    }
    atomic_write(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    atomic_write(out.with_name(out.name + ".report.json"), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write(out.with_name(out.name + ".report.md"), curation_markdown(report))
    return report


def _generator(row: dict) -> str:
    return (row.get("lineage") or {}).get("generator") or "(none)"


def curation_markdown(report: dict) -> str:
    lines = [f"# Curation of {report['run_dir']}", "",
             f"- accepted by the run: {report['accepted_before']}",
             f"- removed (marked bad): {report['removed']}",
             f"- added back from the rejects (marked good): {report['added']}",
             f"- written to {report['out']}: {report['written']}",
             f"- marks agreeing with the run: {report['confirmed']['good_accepted']} accepted marked good, "
             f"{report['confirmed']['bad_rejected']} rejected marked bad",
             f"- marks matching no row of this run: {report['marks_unmatched']} of {report['marks_total']}", ""]
    if report["removed_by_generator"]:
        lines += ["## Removed, by generator", "", "| generator | removed |", "|---|---:|"]
        lines += [f"| {g} | {n} |" for g, n in report["removed_by_generator"].items()] + [""]
    if report["added_by_rule"]:
        lines += ["## Added back, by the rule that had dropped them", "", "| rule | added |", "|---|---:|"]
        lines += [f"| {r} | {n} |" for r, n in report["added_by_rule"].items()] + [""]
    return "\n".join(lines)


def describe(report: dict) -> str:
    return (f"curated: {report['written']} records to {report['out']} ({report['accepted_before']} accepted, "
            f"-{report['removed']} marked bad, +{report['added']} rejected marked good); "
            f"{report['marks_unmatched']} of {report['marks_total']} marks match no row here. "
            f"Report: {report['out']}.report.md")
