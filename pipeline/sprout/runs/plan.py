"""Plans: which generators a command runs, in what order, with how many units of work, and how each is built from
the RunContext — the one place that wires a generator to the run's backend, filter stage and log.

`sprout data` runs Self-Instruct, then Evol-Instruct (over the grown tasks, the seeds or a file), then pair synthesis
per user task, then FLAN expansion; `evolve`, `synth` and `templates expand` run one of them. The planned units are
what the progress display and the dry run's estimate count (a run may stop short of them: max_batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sprout.core.records import Record
from sprout.core.seeds import load_seeds
from sprout.filters.build import Filters, read_eval_files
from sprout.generators.evol_instruct.generator import NAME as EVOL
from sprout.generators.evol_instruct.generator import make_evolver
from sprout.generators.flan.expansion import FlanExpansion, FlanSource, load_source
from sprout.generators.pair_synthesis.generator import PairSynthesis
from sprout.generators.pair_synthesis.task_spec import TaskSpec, load_specs
from sprout.generators.self_instruct.examples import check_seed_counts, worked_examples
from sprout.generators.self_instruct.generator import NAME as SELF_INSTRUCT
from sprout.generators.self_instruct.generator import SelfInstruct
from sprout.io.dataset_io import read_records
from sprout.runs.context import RunContext
from sprout.runs.driver import Planned


@dataclass
class Inputs:
    """Everything a run reads before it makes its folder, so a bad file fails before any model work."""

    seeds: list = field(default_factory=list)
    evol_rows: list[Record] = field(default_factory=list)  # Evol-Instruct's rows from a file
    specs: list[TaskSpec] = field(default_factory=list)
    flan: list[FlanSource] = field(default_factory=list)


def read_data_inputs(config) -> Inputs:
    generators = config.generators
    seeds = load_seeds(config.seeds)
    check_seed_counts(seeds, generators.self_instruct, config.seeds)
    evol = generators.evol_instruct
    inputs = Inputs(seeds=seeds,
                    evol_rows=read_records(evol.input) if evol is not None and evol.source == "file" else [],
                    specs=load_specs(generators.pair_synthesis),
                    flan=[load_source(entry, f"generators.flan.tasks[{i}]")
                          for i, entry in enumerate(generators.flan.tasks)] if generators.flan else [])
    read_eval_files(config.filters)
    return inputs


def judge_backends(config) -> list:
    """The backends a run's judges name (beyond the run's own), resolved before anything is written."""
    evol = getattr(config, "evol_instruct", None) or getattr(getattr(config, "generators", None), "evol_instruct",
                                                             None)
    judges = list(config.filters.judges) + ([evol.judge] if evol is not None else [])
    return [j.backend for j in judges if j.backend]


def evol_judges(evol) -> list[tuple]:
    """Evol-Instruct's equality judge joins the run's judges, judging evol_instruct alone."""
    return [(evol.judge, [EVOL])] if evol is not None else []


def self_instruct_step(config, seeds) -> Planned:
    si = config.generators.self_instruct

    def build(ctx: RunContext) -> SelfInstruct:
        filters = ctx.filters
        tasks = filters.stage("tasks", filters.config.task_rules, SELF_INSTRUCT, holds="tasks")
        tasks.seed_dedup([s.instruction for s in seeds])
        views = Filters(tasks, filters.stage("instances", filters.config.instance_rules, SELF_INSTRUCT))
        return SelfInstruct(si, seeds, ctx.backends.get(), views, ctx.seed, worked_examples(seeds, si, ctx.log),
                            log=ctx.log)

    return Planned(SELF_INSTRUCT, "tasks", si.target, build)


def evol_units(evol, rows: int) -> int:
    """Evol-Instruct's planned attempts: every row (capped by `per_round`) in every round."""
    return evol.rounds * (min(rows, evol.per_round) if evol.per_round is not None else rows)


def evol_step(evol, rows: int | None, sources, seeds=(), keep_original: bool = False) -> Planned:
    """Evol-Instruct over `sources` (a list, or a function of the context: the tasks Self-Instruct grew). Near-dups
    are judged against the rows evolved and the seed instructions; `keep_original` writes the rows too."""
    planned = None if rows is None else evol_units(evol, rows)

    def build(ctx: RunContext):
        rows = sources(ctx) if callable(sources) else sources
        known = {r.instruction for r in rows}
        generator = make_evolver(evol, ctx.filters, rows, ctx.backends.get, ctx.seed, log=ctx.log,
                                 dedup_against=rows + [s.instruction for s in seeds if s.instruction not in known])
        if keep_original:
            ctx.files.write(rows)
        return generator

    return Planned(EVOL, "attempts", planned, build)


def grown_tasks(ctx: RunContext) -> list[Record]:
    """The pool Self-Instruct grew, one example per task (its first accepted instance)."""
    first_of_task: dict[str, Record] = {}
    for record in ctx.generators[SELF_INSTRUCT].accepted_records:
        first_of_task.setdefault(record.lineage.task_id, record)
    return list(first_of_task.values())


def synth_step(entry, spec: TaskSpec) -> Planned:
    def build(ctx: RunContext) -> PairSynthesis:
        stage = ctx.filters.stage(f"pairs:{spec.name}", entry.rules, "pair_synthesis", scope=f"task:{spec.name}")
        return PairSynthesis(entry, spec, ctx.backends.get(), stage, ctx.seed, log=ctx.log)

    return Planned(f"pair_synthesis:{spec.name}", "pairs", entry.n, build)


def flan_step(flan, sources: list[FlanSource]) -> Planned:
    def build(ctx: RunContext) -> FlanExpansion:
        return FlanExpansion(flan, ctx.filters.stage("flan", flan.rules, "flan"), ctx.seed, sources, log=ctx.log)

    return Planned("flan", "rows", sum(len(s.rows) for s in sources), build)


def data_plan(config, inputs: Inputs) -> list[Planned]:
    """`sprout data`: every configured generator, in the product's order."""
    generators = config.generators
    plan = [self_instruct_step(config, inputs.seeds)]
    evol = generators.evol_instruct
    if evol is not None:
        if evol.source == "seeds":
            sources = [seed.to_records()[0] for seed in inputs.seeds]
            plan.append(evol_step(evol, len(sources), sources, inputs.seeds, evol.keep_original))
        elif evol.source == "file":
            plan.append(evol_step(evol, len(inputs.evol_rows), inputs.evol_rows, inputs.seeds, evol.keep_original))
        else:  # the grown tasks are in examples.jsonl already: never written twice
            plan.append(evol_step(evol, generators.self_instruct.target, grown_tasks, inputs.seeds))
    plan += [synth_step(entry, spec) for entry, spec in zip(generators.pair_synthesis, inputs.specs, strict=True)]
    if generators.flan:
        plan.append(flan_step(generators.flan, inputs.flan))
    return plan
