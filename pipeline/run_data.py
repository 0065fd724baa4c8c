"""`sprout data`: grow the seed set into out/<run>/examples.jsonl, with rejects and a report beside it.

Order matters for honest errors: config, then seeds, then the run directory check — all before a model loads —
so a user mistake costs seconds and leaves no file behind.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sprout.backends.cache import CachedBackend
from sprout.config import DataConfig, FilterConfig, dump_resolved
from sprout.errors import UserError
from sprout.filters.rules import (
    GROUP_RULES,
    BannedPrefix,
    Blacklist,
    EmptyOutput,
    FormatLeak,
    InputEqualsOutput,
    LeadingCharacter,
    RougeDedup,
    TrailingColon,
    WordCount,
)
from sprout.filters.stage import FilterStage
from sprout.generators.self_instruct import SelfInstruct
from sprout.jsonl import ResumableJsonl, atomic_write
from sprout.seeds import SeedTask, load_seeds

OUTPUTS = ("examples.jsonl", "rejected.jsonl", "report.json", "config.yaml")


@dataclass
class Filters:
    """The shared stage, in two levels: new instructions, then the instances written for accepted ones."""

    tasks: FilterStage
    instances: FilterStage


def build_filters(config: FilterConfig, seeds: list[SeedTask]) -> Filters:
    dedup = RougeDedup(config.rouge_l_threshold)
    for instruction in dict.fromkeys(s.instruction for s in seeds):
        dedup.index.add(instruction)
    task_rules = [WordCount(config.min_words, config.max_words), Blacklist(config.blacklist),
                  BannedPrefix(config.banned_prefixes), LeadingCharacter(), dedup]  # cheap first, ROUGE-L last
    instance_rules = [EmptyOutput(), InputEqualsOutput(), TrailingColon(), FormatLeak(config.format_markers)]
    return Filters(FilterStage("tasks", task_rules), FilterStage("instances", instance_rules, GROUP_RULES))


@dataclass
class RunSummary:
    out_dir: str
    seeds: int
    target: int
    new_tasks: int = 0
    examples: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    stages: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    stopped_early: bool = False


def prepare_run_dir(config: DataConfig, force: bool) -> None:
    out = Path(config.out_dir)
    recorded = out / "config.yaml"
    if recorded.exists() and recorded.read_text(encoding="utf-8") != dump_resolved(config):
        if not force:
            raise UserError(f"{out} holds a run made with a different config. Fix: use another out_dir, or "
                            "--force to discard that run and start over.")
    if force:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
    atomic_write(recorded, dump_resolved(config))


def run_data(config: DataConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    from sprout.backends.local import LocalBackend
    from sprout.model_store import resolve_model

    seeds = load_seeds(config.seeds)
    model_dir = resolve_model(config.backend.model, log=log)
    prepare_run_dir(config, force)
    started = time.monotonic()
    backend = CachedBackend(LocalBackend(model_dir, config.backend.batch_size, config.backend.threads,
                                         config.backend.device), config.cache)
    filters = build_filters(config.filters, seeds)
    si_config = config.generators.self_instruct
    generator = SelfInstruct(si_config, seeds, backend, filters, config.seed)
    summary = RunSummary(str(config.out_dir), len(seeds), si_config.target)
    examples = ResumableJsonl(Path(config.out_dir) / "examples.jsonl")
    rejected = ResumableJsonl(Path(config.out_dir) / "rejected.jsonl")
    try:
        while summary.new_tasks < si_config.target:
            if summary.batches >= si_config.max_batches:
                summary.stopped_early = True
                log(f"Stopped after max_batches={si_config.max_batches} with {summary.new_tasks} of "
                    f"{si_config.target} new tasks; raise generators.self_instruct.max_batches to go on.")
                break
            result = generator.run_batch(summary.batches, si_config.target - summary.new_tasks)
            examples.write([r.to_json() for r in result.records])
            rejected.write([r.to_json() for r in result.rejections])
            summary.batches += 1
            summary.new_tasks += len(result.new_tasks)
            summary.examples += len(result.records)
            summary.rejected += len(result.rejections)
            if progress:
                progress(summary.new_tasks, si_config.target)
        why = "the run stopped at max_batches first" if summary.stopped_early else "the target was met first"
        leftovers = generator.drain_backlog(why)
        rejected.write([r.to_json() for r in leftovers])
        summary.rejected += len(leftovers)
    finally:
        examples.close()
        rejected.close()
        backend.close()
    summary.seconds = round(time.monotonic() - started, 1)
    summary.stages = {name: asdict(getattr(filters, name).counts) for name in ("tasks", "instances")}
    summary.usage = asdict(backend.usage)
    atomic_write(Path(config.out_dir) / "report.json", json.dumps(asdict(summary), indent=2) + "\n")
    return summary

