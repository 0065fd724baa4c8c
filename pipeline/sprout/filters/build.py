"""Build filter stages from the `filters:` config: rule names -> rule objects (through the rule registry), in the
configured order, and the LLM judges."""

from __future__ import annotations

from dataclasses import dataclass

from sprout.config.filters import FilterConfig, JudgeConfig
from sprout.core.prompts import load_prompt
from sprout.filters.judge import JudgeRule
from sprout.filters.registry import RULES, eval_index
from sprout.filters.stage import FilterStage


def read_eval_files(config: FilterConfig) -> None:
    """Read and index the eval files now, before a run makes its folder: a bad eval row is a user error that must
    leave nothing behind. The stages built later reuse this index (`cached_index`)."""
    if config.decontaminate_against:
        eval_index(config)


@dataclass
class Filters:
    """The shared stage, in two levels: new instructions, then the instances written for accepted ones."""

    tasks: FilterStage
    instances: FilterStage


def build_judge(config: JudgeConfig, backend, context=None) -> JudgeRule:
    prompt = load_prompt(config.prompt)
    verdicts = prompt.meta.get("verdicts", {})
    return JudgeRule(config.name, prompt, backend, config.sampling.to_sampling(),
                     drop=config.drop or verdicts.get("drop", []), keep=config.keep or verdicts.get("keep", []),
                     context=context)


def build_stage(name: str, rule_names: list[str], config: FilterConfig, judges: list[JudgeRule] = ()) -> FilterStage:
    """A stage running `rule_names` in order (group rules first, as the stage runs them), then `judges`. The names
    are validated with the config, and what a rule needs (eval files) too."""
    specs = [RULES[n] for n in rule_names]
    groups = {spec.name: spec.make(config) for spec in specs if spec.level == "group"}
    records = [spec.make(config) for spec in specs if spec.level == "record"]
    return FilterStage(name, records, groups, list(judges))


def build_judges(config: FilterConfig, backend_for) -> dict[str, list[JudgeRule]]:
    """Judges per stage; `backend_for(BackendConfig | None)` gives each its (cached) backend."""
    judges: dict[str, list[JudgeRule]] = {"tasks": [], "instances": []}
    for judge in config.judges:
        judges[judge.stage].append(build_judge(judge, backend_for(judge.backend)))
    return judges


def build_filters(config: FilterConfig, seed_instructions: list[str], backend_for=None) -> Filters:
    """Stages for a generator run; the ROUGE-L pool starts with the seed instructions."""
    judges = build_judges(config, backend_for)
    filters = Filters(build_stage("tasks", config.task_rules, config, judges["tasks"]),
                      build_stage("instances", config.instance_rules, config, judges["instances"]))
    filters.tasks.seed_dedup(seed_instructions)
    return filters
