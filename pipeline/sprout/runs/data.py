"""`sprout data`: grow the seed set into out/<run>/examples.jsonl, with rejects and a report beside it.

Order matters for honest errors: config, then seeds, then the run directory check — all before a model loads —
so a user mistake costs seconds and leaves no file behind.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sprout.backends.registry import Backends
from sprout.config.filters import FilterConfig
from sprout.config.loader import dump_resolved
from sprout.config.run import DataConfig
from sprout.core.errors import UserError
from sprout.core.records import Record
from sprout.core.seeds import load_seeds
from sprout.filters.build import build_filters, build_stage, read_eval_files
from sprout.filters.dedup_rules import SCORE_FLOOR
from sprout.filters.heavy_drops import heavy_drops
from sprout.generators.evol_instruct.generator import make_evolver
from sprout.generators.flan.config import FlanConfig
from sprout.generators.flan.expansion import FlanExpansion, load_source
from sprout.generators.self_instruct.config import SelfInstructConfig
from sprout.generators.self_instruct.generator import SelfInstruct
from sprout.io.dataset_io import read_records
from sprout.io.jsonl import ResumableJsonl, atomic_write
from sprout.io.run_lock import run_lock
from sprout.reports.report import write_reports

OUTPUTS = ("examples.jsonl", "rejected.jsonl", "report.json", "config.yaml")


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
    histograms: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    stopped_early: bool = False
    synthesis: list = field(default_factory=list)  # per task: label target, produced and accepted per mode
    flan: list = field(default_factory=list)  # per template set: rows, records, uses per template
    work: dict = field(default_factory=dict)  # units of work per generator (tasks grown, evolutions, pairs)
    evol_rounds: dict = field(default_factory=dict)  # Evol-Instruct: each round's fates, every input row's outcome
    command: str = "data"  # the command that made the run: data, filter, evolve, synth, flan
    warnings: list = field(default_factory=list)  # a rule that dropped most of what it checked, with the key to change


class RunFiles:
    """A run's examples.jsonl and rejected.jsonl: each batch's records and rejects are appended (whole lines,
    fsynced, resumable) and counted into the summary in one call, so the files and the counts cannot drift."""

    def __init__(self, summary: RunSummary):
        out = Path(summary.out_dir)
        self.summary = summary
        if _has_backend_errors(out / "rejected.jsonl"):
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


def _has_backend_errors(rejected: Path) -> bool:
    if not rejected.exists():
        return False
    with open(rejected, "rb") as handle:
        return any(line.startswith(b'{"rule": "backend_error"') for line in handle)


SHIPPED_SEEDS = Path(__file__).resolve().parent.parent / "assets" / "seeds" / "general.jsonl"


def check_seed_counts(seeds, si: SelfInstructConfig, paths) -> None:
    """Self-Instruct shows `in_context` of the user's seed tasks per proposal prompt: a seed set too small for that
    is an error now, before anything is written. (Worked examples of a kind the seeds lack are borrowed instead:
    see worked_examples.)"""
    if len(seeds) < si.in_context:
        files = ", ".join(str(p) for p in paths)
        raise UserError(f"{files}: too few seeds for Self-Instruct's prompts: {len(seeds)} seed tasks, but "
                        f"generators.self_instruct.in_context is {si.in_context}. Fix: add seed tasks, or lower "
                        "that key.")


def worked_examples(seeds, si: SelfInstructConfig, log) -> list:
    """The tasks shown as worked examples to the classification judge and the instance prompts: the user's seeds,
    topped up from sprout's own shipped seeds for a kind they have too few of (an Alpaca seed file has no
    classification tasks at all). The user's seeds stay the only ones shown in proposal prompts and in the dedup
    pool."""
    needed = {True: max(si.instance_examples, si.classify_examples // 2),
              False: max(si.instance_examples, si.classify_examples - si.classify_examples // 2)}
    examples = list(seeds)
    for flag, name in ((True, "classification"), (False, "non-classification")):
        have = [s for s in seeds if s.is_classification == flag]
        if len(have) >= needed[flag]:
            continue
        shipped = [s for s in load_seeds([SHIPPED_SEEDS]) if s.is_classification == flag and s not in seeds]
        borrowed = shipped[: needed[flag] - len(have)]
        examples += borrowed
        log(f"seeds: {len(have)} {name} seed tasks; {len(borrowed)} of sprout's own ({SHIPPED_SEEDS.name}) are "
            f"borrowed as worked examples for the classification judge and the {name} instance prompts.")
    return examples


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


def histogram(scores: list[float | None], floor: float = SCORE_FLOOR, width: float = 0.05) -> dict[str, list]:
    """Bins of `width` from `floor` to 1, and one bin below the floor (where a score of None goes: see
    dedup_rules.SCORE_FLOOR)."""
    steps = round((1 - floor) / width)
    edges = [0.0] + [round(floor + i * width, 4) for i in range(steps + 1)]
    counts = [0] * (len(edges) - 1)
    for score in scores:
        counts[0 if score is None or score < floor else min(1 + int((score - floor) / width + 1e-9), steps)] += 1
    return {"edges": edges, "counts": counts}


def evolve_rounds(evolver, rounds: int, files: RunFiles, log, after_round=None, step_done=None) -> None:
    """Run Evol-Instruct's generations, appending each round's survivors and eliminations (one line per attempt) to
    the run's files as the round ends; each round's fates and every input row's outcome go into the summary."""
    if evolver.left_out:
        log(f"Evol-Instruct: per_round={evolver.config.per_round} evolves a sample of {len(evolver.generation)} "
            f"rows; {len(evolver.left_out)} of the input are left out.")
    for round_no in range(rounds):
        for part in evolver.steps(round_no):
            files.write(part.records, part.rejections)
            if step_done:
                step_done(evolver.done_attempts, rounds * len(evolver.generation))
        fates = evolver.rounds[-1]
        eliminated = ", ".join(f"{rule} {n}" for rule, n in fates["eliminated"].items()) or "none"
        log(f"Evol-Instruct round {round_no + 1}/{rounds}: {fates['attempted']} attempts, {fates['evolved']} "
            f"evolved, eliminated: {eliminated}" + (f"; {fates['retried_next_round']} retried next round"
                                                    if fates["retried_next_round"] else ""))
        files.summary.evol_rounds = {"rounds": evolver.rounds, "outcome": evolver.outcome()}
        if after_round:
            after_round(round_no)


def finish_run(summary: RunSummary, stages: dict, usage: dict, started: float) -> None:
    """Counts, histogram, usage and time into report.json, then report.md and report.html beside it."""
    summary.seconds = round(time.monotonic() - started, 1)
    summary.stages = {name: asdict(stage.counts) for name, stage in stages.items()}
    scores = [s for stage in stages.values() for s in stage.rouge_scores()]
    summary.histograms = {"rouge_l": histogram(scores)} if scores else {}
    summary.usage = usage
    summary.warnings = heavy_drops(summary.stages, summary.command)
    atomic_write(Path(summary.out_dir) / "report.json", json.dumps(asdict(summary), indent=2) + "\n")
    write_reports(Path(summary.out_dir))


def _evolve_pool(config, grower, seeds, file_sources, backends, files: RunFiles, log):
    """Evol-Instruct over the tasks Self-Instruct grew (one example each; or the seeds, or a file), every row each
    round, deduplicated against the seeds, the sources and everything accepted; its survivors and eliminations land
    in the same files."""
    evol = config.generators.evol_instruct
    if evol is None:
        return None
    if evol.source == "seeds":
        sources = [seed.to_records()[0] for seed in seeds]
    elif evol.source == "file":
        sources = file_sources
    else:  # the pool Self-Instruct grew: one example per task
        first_of_task: dict[str, Record] = {}
        for record in grower.accepted_records:
            first_of_task.setdefault(record.lineage.task_id, record)
        sources = list(first_of_task.values())
    known = {r.instruction for r in sources}
    evolver = make_evolver(evol, config.filters, sources, backends.get, config.seed,
                           dedup_against=sources + [s.instruction for s in seeds if s.instruction not in known])
    if evol.keep_original and evol.source != "pool":  # the grown tasks are in examples.jsonl already
        files.write(sources)
    evolve_rounds(evolver, evol.rounds, files, log)
    return evolver


def expand_flan(flan: FlanConfig | None, filters: FilterConfig, seed: int, sources, files: RunFiles, log):
    """FLAN templates over their rows: no model call, the same kind of stage and the same files as the rest."""
    if flan is None:
        return None
    expansion = FlanExpansion(flan, build_stage("flan", flan.rules, filters), seed)
    for source in sources:
        result = expansion.run(source)
        files.write(result.records, result.rejections)
        log(f"FLAN {source.templates.name}: {len(result.records)} records from {len(source.rows)} rows")
    files.summary.flan = expansion.stats
    return expansion


def _self_instruct(generator: SelfInstruct, si_config, files: RunFiles, progress, log) -> None:
    """Batches until `target` new tasks (or max_batches); proposals never judged are written down as rejects."""
    summary = files.summary
    while summary.new_tasks < si_config.target:
        if summary.batches >= si_config.max_batches:
            summary.stopped_early = True
            log(f"Stopped after max_batches={si_config.max_batches} with {summary.new_tasks} of "
                f"{si_config.target} new tasks; raise generators.self_instruct.max_batches to go on.")
            break
        result = generator.run_batch(summary.batches, si_config.target - summary.new_tasks)
        files.write(result.records, result.rejections)
        summary.batches += 1
        summary.new_tasks += len(result.new_tasks)
        if progress:
            progress(summary.new_tasks, si_config.target)
    why = "the run stopped at max_batches first" if summary.stopped_early else "the target was met first"
    files.write(rejections=generator.drain_backlog(why))


def run_data(config: DataConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    from sprout.runs.synth import load_specs, synthesize

    seeds = load_seeds(config.seeds)
    generators = config.generators
    check_seed_counts(seeds, generators.self_instruct, config.seeds)
    evol = generators.evol_instruct
    # Read every input now (Evol file, task specs, FLAN templates and rows): a bad file fails before model work.
    file_sources = read_records(evol.input) if evol is not None and evol.source == "file" else []
    specs = load_specs(generators.pair_synthesis)
    flan_sources = [load_source(entry, f"generators.flan.tasks[{i}]")
                    for i, entry in enumerate(generators.flan.tasks)] if generators.flan else []
    read_eval_files(config.filters)
    backends = Backends(config.backend, config.cache, log)
    backends.resolve([j.backend for j in config.filters.judges if j.backend])
    with run_lock(config.out_dir, log):
        prepare_run_dir(config, force)
        started = time.monotonic()
        backend = backends.get()
        filters = build_filters(config.filters, [s.instruction for s in seeds], backends.get)
        si_config = config.generators.self_instruct
        generator = SelfInstruct(si_config, seeds, backend, filters, config.seed,
                                 worked_examples(seeds, si_config, log))
        summary = RunSummary(str(config.out_dir), len(seeds), si_config.target)
        try:
            with RunFiles(summary) as files:
                _self_instruct(generator, si_config, files, progress, log)
                evolutions = _evolve_pool(config, generator, seeds, file_sources, backends, files, log)
                synthesized = [synthesize(entry, spec, backends, config.filters, config.seed, files, log)
                               for entry, spec in zip(generators.pair_synthesis, specs, strict=True)]
                for pairs in synthesized:
                    log(f"pair synthesis {pairs.spec.name}: {sum(pairs.accepted.values())} of {pairs.config.n} pairs, "
                        f"labels {dict(pairs.accepted)}")
                expansion = expand_flan(generators.flan, config.filters, config.seed, flan_sources, files, log)
        finally:
            backends.close()
        summary.work = {"self_instruct": summary.new_tasks, "evol_instruct": evolutions.attempted if evolutions else 0,
                        "pair_synthesis": sum(sum(pairs.accepted.values()) for pairs in synthesized)}
        stages = {"tasks": filters.tasks, "instances": filters.instances}
        if evolutions:
            stages["evolutions"] = evolutions.stage
        stages |= {pairs.stage.name: pairs.stage for pairs in synthesized}
        if expansion:
            stages["flan"] = expansion.stage
        finish_run(summary, stages, backends.usage(), started)
    return summary

