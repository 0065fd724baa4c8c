"""`sprout filter` and `sprout dedup`: the filter stage on its own, over a dataset the user already has."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.backends.registry import Backends
from sprout.config.filters import INSTANCE_RULES, FilterConfig, RuleList
from sprout.config.paths import OutputFile, OutputFolder
from sprout.config.run import RunConfig
from sprout.core.errors import UserError
from sprout.filters.build import read_eval_files
from sprout.filters.fast_rouge import FastRougeIndex
from sprout.filters.row_index import FIELDS, DedupOn, RowRougeIndex, row_texts
from sprout.filters.shared import RunFilters
from sprout.io.dataset_io import field_texts, read_records, read_rows, write_rows
from sprout.io.jsonl import atomic_write
from sprout.runs.context import RunSummary, finish_run

# A row of a user's dataset is an example, not a task: instances are capped per task only when the user lists
# max_instances, and near-duplicates are rows alike in every field (dedup_on: all).
ROW_INSTANCE_RULES = [name for name in INSTANCE_RULES if name != "max_instances"]


class RowFilterConfig(FilterConfig):
    """`filters:` for `sprout filter`: the same keys, with defaults for rows a user already has."""

    instance_rules: RuleList = Field(default_factory=lambda: list(ROW_INSTANCE_RULES))
    dedup_on: DedupOn = "all"


class FilterRunConfig(RunConfig):
    out_dir: OutputFolder = Path("out/filter")
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = LocalBackendConfig()  # only used by judges
    filters: RowFilterConfig = Field(default_factory=RowFilterConfig)


def run_filter(input_path: Path, config: FilterRunConfig, log=print) -> RunSummary:
    """Every row passes the instruction rules and the instance rules, in the configured order, greedy in file order
    (near-duplicates against every earlier kept row); the kept rows go to examples.jsonl (as records) and, as the
    user wrote them, to kept.jsonl or kept.json (the input's format); rejects and the report beside them."""
    fmt, rows = read_rows(input_path)
    if fmt == "txt":
        raise UserError(f"{input_path}: sprout filter reads rows (.jsonl or a .json array of Alpaca rows, `messages` "
                        "rows or sprout records). Fix: for a text file of one item a line, use `sprout dedup`.")
    records = read_records(input_path, rows)
    read_eval_files(config.filters)
    started = time.monotonic()
    judges = config.filters.judges
    backends = Backends(config.backend, config.cache, log) if judges else None
    if backends:
        backends.resolve([j.backend for j in judges if j.backend])
    # One view of the filter stage: instruction rules then instance rules; judges of either level run last, batched.
    names = config.filters.task_rules + [n for n in config.filters.instance_rules if n not in config.filters.task_rules]
    filters = RunFilters(config.filters, backends.get if backends else None)
    stage = filters.stage("rows", names, "filter", holds="rows")
    try:
        accepted, rejected, _ = stage.run(records)
    finally:
        if backends:
            backends.close()
    out = Path(config.out_dir)
    kept = {id(record) for record in accepted}
    atomic_write(out / "examples.jsonl", "".join(r.to_json() + "\n" for r in accepted))
    atomic_write(out / "rejected.jsonl", "".join(r.to_json() + "\n" for r in rejected))
    write_rows(out / f"kept.{fmt}", fmt, [row for (_, row), record in zip(rows, records, strict=True)
                                          if id(record) in kept])
    (out / f"kept.{'json' if fmt == 'jsonl' else 'jsonl'}").unlink(missing_ok=True)  # an earlier run's other format
    summary = RunSummary(str(out), seeds=0, target=0, examples=len(accepted), rejected=len(rejected),
                         command="filter")
    finish_run(summary, filters, backends.usage() if backends else {}, started)
    return summary


def run_dedup(input_path: Path, output: Path, threshold: float, field: str | None, mode: str,
              on: DedupOn | None = None) -> dict:
    """Greedy ROUGE-L dedup in file order: keeps the first of each near-duplicate group. Writes OUTPUT in the input's
    format and, beside it, `<name>.rejected.jsonl` with each dropped item, its score(s) and the kept item it matched.

    What is compared: a text file's lines; one JSON field (`field`); or, for rows (Alpaca, `messages`, sprout
    records), the fields `on` names (default all: a near-duplicate row is one alike in every field)."""
    fmt, rows = read_rows(input_path)
    if field is not None and on is not None:
        raise UserError("--field and --on both given: compare one JSON field (--field) or row fields (--on).")
    started = time.monotonic()
    if fmt == "txt" or field is not None:
        kept, dropped = _dedup_texts(field_texts(input_path, rows, field if fmt != "txt" else None), rows, threshold,
                                     mode)
    else:
        try:
            records = read_records(input_path, rows)
        except UserError as error:
            raise UserError(f"{error.message} Fix: rows are Alpaca, `messages` or sprout rows; for other JSON objects, "
                            "compare one field with --field NAME.", error.details) from None
        kept, dropped = _dedup_rows(records, rows, threshold, mode, on or "all")
    seconds = time.monotonic() - started
    write_rows(output, fmt, kept)
    rejects = output.with_name(output.stem + ".rejected.jsonl")
    write_rows(rejects, "jsonl", dropped)
    return {"read": len(rows), "kept": len(kept), "dropped": len(dropped), "seconds": seconds,
            "output": str(output), "rejects": str(rejects), "compared": field or ("line" if fmt == "txt" else
                                                                                     FIELDS[on or "all"])}


def _dedup_texts(texts: list[str], rows: list[tuple[int, object]], threshold: float, mode: str):
    index, kept, dropped = FastRougeIndex(mode), [], []
    for (line, row), text in zip(rows, texts, strict=True):
        hit = index.exceeds(text, threshold)
        if hit:
            dropped.append({"line": line, "text": text, "score": hit[0], "match": hit[1]})
        else:
            index.add(text)
            kept.append(row)
    return kept, dropped


def _dedup_rows(records: list, rows: list[tuple[int, object]], threshold: float, mode: str, on: DedupOn):
    fields = FIELDS[on]
    index, kept, kept_lines, dropped = RowRougeIndex(len(fields), mode), [], [], []
    for (line, row), record in zip(rows, records, strict=True):
        texts = row_texts(record, fields)
        hit = index.exceeds(texts, threshold)
        if hit:
            scores, match = hit
            dropped.append({"line": line, "score": min(scores), "scores": dict(zip(fields, scores, strict=True)),
                            "match_line": kept_lines[match], "row": row})
        else:
            index.add(texts)
            kept.append(row)
            kept_lines.append(line)
    return kept, dropped
