"""The run's one filter stage, shared by every generator of the run.

Each generator filters its candidates through a named view of it (`stage(...)`: "tasks" and "instances" for
Self-Instruct, "evolutions", "pairs:<task>", "flan", "rows" for a user's dataset), with the rules its config lists in
the order it lists them, counted per view so the report's funnel shows each generator's drops. What makes it one
stage is what the views share:

- **Near-duplicate pools.** A stateful rule (rouge_l, input_rouge_l, exact_duplicate) is one object per pool, not
  per view: every instruction accepted by Self-Instruct or Evol-Instruct is in one instruction pool, so an evolved
  instruction is checked against the grown tasks and the seeds (never against its own ancestors: they are named by
  id, see RougeDedup); a synthesised input is checked against every accepted input of its task; instance-level
  records (pairs, FLAN rows) compared on every field share one row pool; exact duplicates are one pool for the run.
- **Judges**, configured once (`filters.judges`, plus Evol-Instruct's equality judge), each naming the generators it
  judges (`generators: [all]` by default). A judge sees the record, and its parent when the record has one (the
  equality judge compares an evolution with the instruction it came from).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from jinja2 import meta

from sprout.core.errors import UserError
from sprout.core.prompts import Repeat, load_prompt, sandbox
from sprout.core.records import Record, prompt_text
from sprout.filters.build import build_judge, build_stage
from sprout.filters.dedup_rules import ExactDuplicate, RougeDedup
from sprout.filters.stage import FilterStage

# What a view holds, and so which judges (`stage: tasks|instances`) apply: a new instruction alone, or a complete
# record. A user's rows get both kinds of judges, as they get both kinds of rules.
JUDGE_LEVELS = {"tasks": ("tasks",), "instances": ("instances",), "rows": ("tasks", "instances")}
# Generators whose records name a parent in their lineage (a judge that reads `parent` can only judge these).
WITH_PARENTS = ("evol_instruct",)


def uses_parent(prompt) -> bool:
    """Whether a judge prompt reads the `parent` variable (the record its candidate evolved from)."""
    sources = [content for entry in prompt.messages
               for _, content in (entry.messages if isinstance(entry, Repeat) else (entry,))]
    return any("parent" in meta.find_undeclared_variables(sandbox().parse(s)) for s in sources)


def check_judges(entries: list[tuple], has_model: bool) -> None:
    """Judges (JudgeConfig, generators) a run can use: checked before the run's folder is touched. A judge needs a
    model; one whose prompt reads `parent` can only judge records that have one."""
    if entries and not has_model:
        raise UserError(f"judge {entries[0][0].name!r} needs a model, and this command runs none (FLAN template "
                        "expansion). Fix: remove `filters.judges`, or expand the templates within `sprout data`, "
                        "where judges have the run's backend.")
    for judge_config, generators in entries:
        prompt = load_prompt(judge_config.prompt)
        if uses_parent(prompt) and any(g not in WITH_PARENTS for g in generators):
            raise UserError(f"judge {judge_config.name!r} compares a record with its parent (`parent` in "
                            f"{prompt.path}), and only {', '.join(WITH_PARENTS)} records have one. Fix: give it "
                            f"`generators: [{WITH_PARENTS[0]}]`.")


def judge_entries(config, judges: Iterable[tuple] = ()) -> list[tuple]:
    """`filters.judges` as (JudgeConfig, generators) pairs, then the run's own (Evol-Instruct's equality judge)."""
    return [(j, list(j.generators)) for j in config.judges] + list(judges)


class RunFilters:
    def __init__(self, config, backend_for: Callable | None = None, judges: Iterable[tuple] = ()):
        """`config`: the run's `filters:`. `judges`: (JudgeConfig, generators) pairs beyond `filters.judges`, e.g.
        Evol-Instruct's equality judge for ["evol_instruct"]."""
        self.config, self.backend_for = config, backend_for
        self.stages: dict[str, FilterStage] = {}  # every view, in the order the run made them (the report's order)
        self._pools: dict[tuple, object] = {}
        self._parents: dict[str, Record] = {}
        entries = judge_entries(config, judges)
        check_judges(entries, has_model=backend_for is not None)
        self._judges = []
        for judge_config, generators in entries:
            prompt = load_prompt(judge_config.prompt)
            needs_parent = uses_parent(prompt)
            rule = build_judge(judge_config, backend_for(judge_config.backend),
                               context=self.parent_context if needs_parent else None)
            self._judges.append((rule, judge_config.stage, generators))

    def stage(self, name: str, rule_names: list[str], generator: str, holds: str = "instances",
              dedup_on: str | None = None, scope: str = "run") -> FilterStage:
        """The view `name` for `generator`: its rules in order, sharing the run's pools, then its judges.

        `holds`: tasks (new instructions), instances (complete records) or rows (a user's dataset). `dedup_on`: what
        `rouge_l` compares (default: the instruction for tasks, every field for instances, `filters.dedup_on` for
        rows). `scope`: the pool of per-task rules (`input_rouge_l`: one pool per task)."""
        if name in self.stages:
            return self.stages[name]
        compare = dedup_on or {"tasks": self.config.dedup_on, "instances": "all", "rows": self.config.dedup_on}[holds]
        judges = [rule for rule, level, generators in self._judges if level in JUDGE_LEVELS[holds]
                  and ("all" in generators or generator.split(":")[0] in generators)]
        view = build_stage(name, rule_names, self.config.model_copy(update={"dedup_on": compare}), judges)
        view.rules = [self._shared(rule, scope) for rule in view.rules]
        self.stages[name] = view
        return view

    def _shared(self, rule, scope: str):
        """The pool's one object for a stateful rule (made by the first view that lists it), else the rule."""
        if isinstance(rule, RougeDedup):
            key = (rule.name, rule.fields, rule.threshold, scope if rule.name == "input_rouge_l" else "run")
        elif isinstance(rule, ExactDuplicate):
            key = (rule.name,)
        else:
            return rule
        return self._pools.setdefault(key, rule)

    def remember_parents(self, records: Iterable[Record]) -> None:
        """Records that candidates about to be judged evolved from (a judge's `parent`)."""
        self._parents.update((r.id, r) for r in records)

    def parent_context(self, record: Record) -> dict[str, str]:
        parent_ids = record.lineage.parent_ids or []
        if not parent_ids or parent_ids[0] not in self._parents:
            raise UserError(f"a judge needs the parent of record {record.id}, which this run does not hold.")
        return {"parent": prompt_text(self._parents[parent_ids[0]])}

    def rouge_scores(self) -> list[float]:
        """Nearest-neighbour ROUGE-L of every candidate a pool checked (the report's histogram), each once."""
        return [s for rule in self._pools.values() if getattr(rule, "scores", None) for s in rule.scores]
