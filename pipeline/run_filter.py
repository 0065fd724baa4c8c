"""`sprout filter` and `sprout dedup`: the filter stage on its own, over a dataset the user already has."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from sprout.config import BackendConfig, FilterConfig, OutputFile, OutputFolder, Strict
from sprout.dataset_io import field_texts, read_records, read_rows, write_rows
from sprout.filters.build import build_judges, build_stage
from sprout.filters.fast_rouge import FastRougeIndex
from sprout.jsonl import atomic_write
from sprout.run_data import Backends, RunSummary, finish_run


class FilterRunConfig(Strict):
    out_dir: OutputFolder = Path("out/filter")
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = BackendConfig()  # only used by judges
    filters: FilterConfig = Field(default_factory=FilterConfig)


def run_filter(input_path: Path, config: FilterRunConfig, log=print) -> RunSummary:
    """Every row passes the instruction rules and the instance rules, in the configured order, greedy in file order
    (ROUGE-L against every earlier accepted row); rejects and the report go beside the kept rows."""
    records = read_records(input_path)
    started = time.monotonic()
    judges = config.filters.judges
    backends = Backends(config.backend, config.cache, log) if judges else None
    if backends:
        backends.resolve([j.backend for j in judges if j.backend])
    # One stage: instruction rules then instance rules; judges of either level run last, batched.
    names = config.filters.task_rules + [n for n in config.filters.instance_rules if n not in config.filters.task_rules]
    judge_rules = build_judges(config.filters, backends.get if backends else None)
    stage = build_stage("rows", names, config.filters, judge_rules["tasks"] + judge_rules["instances"])
    try:
        accepted, rejected, _ = stage.run(records)
    finally:
        if backends:
            backends.close()
    out = Path(config.out_dir)
    atomic_write(out / "examples.jsonl", "".join(r.to_json() + "\n" for r in accepted))
    atomic_write(out / "rejected.jsonl", "".join(r.to_json() + "\n" for r in rejected))
    summary = RunSummary(str(out), seeds=0, target=0, examples=len(accepted), rejected=len(rejected))
    finish_run(summary, {"rows": stage}, backends.usage() if backends else {}, started)
    return summary


def run_dedup(input_path: Path, output: Path, threshold: float, field: str | None, mode: str) -> dict:
    """Greedy ROUGE-L dedup in file order: keeps the first of each near-duplicate group. Writes OUTPUT in the input's
    format and, beside it, `<name>.rejected.jsonl` with each dropped item, its score and the kept item it matched."""
    fmt, rows = read_rows(input_path)
    if fmt != "txt" and field is None:
        field = "instruction"
    texts = field_texts(input_path, rows, field if fmt != "txt" else None)
    started = time.monotonic()
    index, kept, dropped = FastRougeIndex(mode), [], []
    for (line, row), text in zip(rows, texts, strict=True):
        hit = index.exceeds(text, threshold)
        if hit:
            dropped.append({"line": line, "text": text, "score": hit[0], "match": hit[1]})
        else:
            index.add(text)
            kept.append(row)
    seconds = time.monotonic() - started
    write_rows(output, fmt, kept)
    rejects = output.with_name(output.stem + ".rejected.jsonl")
    write_rows(rejects, "jsonl", dropped)
    return {"read": len(rows), "kept": len(kept), "dropped": len(dropped), "seconds": seconds,
            "output": str(output), "rejects": str(rejects)}
