"""A run's two record files, appended step by step: examples.jsonl (accepted) and rejected.jsonl (dropped)."""

from __future__ import annotations

from pathlib import Path

from sprout.core.records import has_rejection
from sprout.io.jsonl import ResumableJsonl


class RunFiles:
    """A run's examples.jsonl and rejected.jsonl: each step's records and rejects are appended (whole lines,
    fsynced, resumable) and counted into the summary in one call, so the files and the counts cannot drift."""

    def __init__(self, summary):
        out = Path(summary.out_dir)
        self.summary = summary
        if has_rejection(out / "rejected.jsonl", "backend_error"):
            # The last run here lost requests to backend errors; this one asks for them again, so its lines
            # can differ from there on. Start both files over: every answer that did come is in the cache.
            for name in ("examples.jsonl", "rejected.jsonl"):
                (out / name).unlink(missing_ok=True)
        self.examples = ResumableJsonl(out / "examples.jsonl")
        self.rejected = ResumableJsonl(out / "rejected.jsonl")

    def write(self, records=(), rejections=()) -> None:
        self.examples.write([r.to_json() for r in records])
        self.rejected.write([r.to_json() for r in rejections])
        self.summary.examples += len(records)
        self.summary.rejected += len(rejections)

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.examples.close()
        self.rejected.close()
