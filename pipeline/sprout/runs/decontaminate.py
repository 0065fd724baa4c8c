"""`sprout decontaminate`: one dataset file against eval files, through the index in decontaminate.py. Writes the
kept rows in the input's format, `<out>.rejected.jsonl` (each dropped row with the n-gram, field and eval item
that matched) and `<out>.report.{json,md}`."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from sprout.config.paths import in_the_way
from sprout.core.errors import UserError
from sprout.filters.decontamination_index import (
    DEFAULT_FIELDS,
    DEFAULT_MIN_TOKENS,
    DEFAULT_N,
    RULE,
    row_problem,
    scan,
)
from sprout.filters.eval_files import build_index
from sprout.io.dataset_io import read_rows, write_rows
from sprout.io.jsonl import atomic_write
from sprout.reports.report import render


def default_out(input_path: Path) -> Path:
    return input_path.with_name(f"{input_path.stem}.decontaminated{input_path.suffix}")


def side_paths(out: Path) -> dict[str, Path]:
    """Files written beside the kept rows."""
    return {"rejects": out.with_name(out.stem + ".rejected.jsonl"),
            "report_json": out.with_name(out.stem + ".report.json"),
            "report_md": out.with_name(out.stem + ".report.md")}


def run_decontaminate(input_path: Path, against: list[Path], out: Path | None = None, n: int = DEFAULT_N,
                      min_tokens: int = DEFAULT_MIN_TOKENS, fields: tuple[str, ...] = DEFAULT_FIELDS,
                      eval_field: str | None = None, force: bool = False, top: int = 20) -> dict:
    """Read INPUT and the eval files (every problem is reported before anything is written), drop contaminated
    rows, and write the kept rows in INPUT's format, `<out>.rejected.jsonl` and `<out>.report.{json,md}`."""
    input_path = Path(input_path)
    out = Path(out) if out else default_out(input_path)
    fields = tuple(fields) or DEFAULT_FIELDS
    paths = side_paths(out)
    if problem := next(filter(None, (in_the_way(path, folder=False) for path in [out, *paths.values()])), None):
        raise UserError(f"--out {out}: {problem}; nothing was written. Fix: name a file in a folder you can write.")
    if out.exists() and not force:
        same = out.resolve() == input_path.resolve()
        raise UserError(f"--out {out}: {'is the input file' if same else 'exists'}; nothing was written. Fix: pass "
                        "another --out, or --force to replace it" + (" (the input is read whole first)." if same
                                                                       else "."))
    fmt, rows = read_rows(input_path)
    if fmt != "txt":
        problems = [f"{input_path}:{line}: {problem}" for line, row in rows
                    if (problem := row_problem(row, fields))]
        if problems:
            raise UserError(f"{len(problems)} bad row(s) in {input_path}; nothing was written:", problems[:50])
    started = time.perf_counter()
    index, stats = build_index(list(against), n, min_tokens, eval_field)
    built = time.perf_counter()
    result = scan(index, rows, fields)
    scanned = time.perf_counter()

    rejects = []
    for line, row, match in result.dropped:
        rejects.append({"rule": RULE, "reason": match.reason(), "line": line, **match.to_dict(), "record": row})
    report = _report(input_path, out, paths, index, stats, rows, result, fields, eval_field,
                     {"index": round(built - started, 3), "scan": round(scanned - built, 3)}, top)
    try:  # each file whole or not at all (atomic_write); the kept rows last, so they never come without the rest
        write_rows(paths["rejects"], "jsonl", rejects)
        atomic_write(paths["report_json"], json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        atomic_write(paths["report_md"], render("decontamination.md.j2", report=report))
        write_rows(out, fmt, result.kept)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write {exc.filename or out}: {exc.strerror or exc}. Fix: name a file "
                        "in a folder you can write.") from None
    return report


def _report(input_path, out, paths, index, stats, rows, result, fields, eval_field, seconds, top) -> dict:
    per_file = Counter(match.eval.file for _, _, match in result.dropped)
    per_item = Counter((match.eval.file, match.eval.line) for _, _, match in result.dropped)
    first_text = {}
    for _, _, match in result.dropped:
        first_text.setdefault((match.eval.file, match.eval.line), match.eval)
    by_field = Counter(match.field.split("[")[0].split(".")[0] for _, _, match in result.dropped)
    return {
        "input": str(input_path), "output": str(out), "rejects": str(paths["rejects"]),
        "n": index.n, "min_tokens": index.min_tokens, "fields": list(fields), "eval_field": eval_field,
        "read": len(rows), "kept": len(result.kept), "dropped": len(result.dropped),
        "dropped_by_field": dict(by_field.most_common()),
        "eval_files": [{**s.to_dict(), "dropped": per_file.get(s.file, 0)} for s in stats],
        "index_entries": len(index),
        "top_eval_items": [{"eval": f"{file}:{line}", "field": first_text[file, line].field, "dropped": count,
                            "text": _clip(first_text[file, line].text, 200)}
                           for (file, line), count in per_item.most_common(top)],
        "examples": [{"line": line, "reason": match.reason()} for line, _, match in result.dropped[:10]],
        "seconds": seconds,
    }


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
