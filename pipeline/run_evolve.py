"""`sprout evolve`: Evol-Instruct over a dataset the user already has (Alpaca rows or sprout records)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from pydantic import Field

from sprout.config import BackendConfig, EvolInstructConfig, FilterConfig, Strict
from sprout.dataset_io import read_records
from sprout.generators.evol_instruct import make_evolver
from sprout.jsonl import ResumableJsonl, atomic_write
from sprout.report import write_reports
from sprout.run_data import Backends, RunSummary, histogram, prepare_run_dir


class EvolveRunConfig(Strict):
    input: Path | None = None  # the dataset to evolve (`--input`); part of the config so a run dir knows its source
    out_dir: Path = Path("out/evolve")
    seed: int = 42
    cache: Path = Path("out/cache/responses.sqlite")
    backend: BackendConfig = BackendConfig()
    filters: FilterConfig = Field(default_factory=FilterConfig)
    evol_instruct: EvolInstructConfig = Field(default_factory=EvolInstructConfig)


def run_evolve(config: EvolveRunConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    sources = read_records(config.input)
    evol = config.evol_instruct
    backends = Backends(config.backend, config.cache, log)
    backends.resolve([evol.judge.backend] if evol.judge.backend else [])
    prepare_run_dir(config, force)
    started = time.monotonic()
    generator = make_evolver(evol, config.filters, sources, backends.get, config.seed,
                             dedup_against=[r.instruction for r in sources])
    stage = generator.stage
    summary = RunSummary(str(config.out_dir), seeds=len(sources), target=0)
    examples = ResumableJsonl(Path(config.out_dir) / "examples.jsonl")
    rejected = ResumableJsonl(Path(config.out_dir) / "rejected.jsonl")
    try:
        for round_no in range(evol.rounds):
            result = generator.run_round(round_no)
            examples.write([r.to_json() for r in result.records])
            rejected.write([r.to_json() for r in result.rejections])
            summary.batches += 1
            summary.examples += len(result.records)
            summary.rejected += len(result.rejections)
            if progress:
                progress(round_no + 1, evol.rounds)
    finally:
        examples.close()
        rejected.close()
        backends.close()
    summary.seconds = round(time.monotonic() - started, 1)
    summary.stages = {"evolutions": asdict(stage.counts)}
    scores = [s for rule in stage.rules if getattr(rule, "scores", None) for s in rule.scores]
    summary.histograms = {"rouge_l": histogram(scores)}
    summary.usage = backends.usage()
    atomic_write(Path(config.out_dir) / "report.json", json.dumps(asdict(summary), indent=2) + "\n")
    write_reports(Path(config.out_dir))
    return summary
