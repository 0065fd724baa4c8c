"""Build the filter stages from the `filters:` config: rule names -> rule objects, in the configured order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sprout.backends.base import Sampling
from sprout.config import FilterConfig, JudgeConfig
from sprout.core.errors import UserError
from sprout.core.prompts import load_prompt
from sprout.filters import rules as r
from sprout.filters.dedup_rules import ExactDuplicate, RougeDedup
from sprout.filters.eval_files import cached_index
from sprout.filters.judge import JudgeRule
from sprout.filters.stage import FilterStage


def decontamination(config: FilterConfig) -> r.Decontamination:
    """The index over the eval files is built once per run (cached while the files are unchanged), not per stage."""
    if not config.decontaminate_against:  # config validation catches this for the rule lists it can see
        raise UserError("rule `decontamination` is listed but `filters.decontaminate_against` names no eval file. "
                        "Fix: add `decontaminate_against: [path/to/eval.jsonl]` under `filters:`, or drop the rule.")
    index, _ = cached_index(config.decontaminate_against, config.decontamination_n,
                            config.decontamination_min_tokens, config.decontamination_eval_field)
    return r.Decontamination(index, config.decontamination_fields)


def read_eval_files(config: FilterConfig) -> None:
    """Read and index the eval files now, before a run makes its folder: a bad eval row is a user error that must
    leave nothing behind. The stages built later reuse this index (`cached_index`)."""
    if config.decontaminate_against:
        cached_index(config.decontaminate_against, config.decontamination_n, config.decontamination_min_tokens,
                     config.decontamination_eval_field)


RECORD_RULES: dict[str, Callable[[FilterConfig], r.Rule]] = {
    "word_count": lambda c: r.WordCount("instruction", c.min_words, c.max_words, "word_count"),
    "blacklist": lambda c: r.Blacklist(c.blacklist),
    "banned_prefix": lambda c: r.BannedPrefix(c.banned_prefixes),
    "leading_char": lambda c: r.LeadingCharacter(),
    "scaffold_copy": lambda c: r.ScaffoldCopy(c.scaffold_phrases),
    "rouge_l": lambda c: RougeDedup(c.rouge_l_threshold, c.rouge_tokenizer, track_scores=True, dedup_on=c.dedup_on),
    "input_rouge_l": lambda c: RougeDedup(c.input_rouge_l_threshold, c.rouge_tokenizer, track_scores=True,
                                          field="input", name="input_rouge_l"),
    "empty_output": lambda c: r.EmptyOutput(),
    "input_equals_output": lambda c: r.InputEqualsOutput(),
    "trailing_colon": lambda c: r.TrailingColon(),
    "format_leak": lambda c: r.FormatLeak(c.format_markers),
    "input_length": lambda c: r.WordCount("input", 0, c.input_max_words, "input_length"),
    "output_length": lambda c: r.WordCount("output", c.output_min_words, c.output_max_words, "output_length"),
    "refusal": lambda c: r.Refusal(c.refusal_phrases, c.refusal_max_words),
    "punct_stopwords_only": lambda c: r.PunctStopwordsOnly(),
    "exact_duplicate": lambda c: ExactDuplicate(),
}
# Opt-in record rules that need files named in the config (so none can be built from a default config).
OPT_IN_RECORD_RULES: dict[str, Callable[[FilterConfig], r.Rule]] = {"decontamination": decontamination}
GROUP_RULES: dict[str, Callable[[FilterConfig], Callable]] = {
    "max_instances": lambda c: r.max_instances(c.max_instances_per_task),
    "conflicting_outputs": lambda c: partial(r.conflicting_outputs, threshold=c.rouge_l_threshold,
                                             mode=c.rouge_tokenizer),
    "duplicate_instance": lambda c: r.duplicate_instances,
}


@dataclass
class Filters:
    """The shared stage, in two levels: new instructions, then the instances written for accepted ones."""

    tasks: FilterStage
    instances: FilterStage


def build_judge(config: JudgeConfig, backend, context=None) -> JudgeRule:
    prompt = load_prompt(config.prompt)
    verdicts = prompt.meta.get("verdicts", {})
    return JudgeRule(config.name, prompt, backend,
                     Sampling(temperature=config.sampling.temperature, top_p=config.sampling.top_p,
                              max_tokens=config.sampling.max_tokens),
                     drop=config.drop or verdicts.get("drop", []), keep=config.keep or verdicts.get("keep", []),
                     context=context)


def build_stage(name: str, rule_names: list[str], config: FilterConfig, judges: list[JudgeRule] = ()) -> FilterStage:
    groups = {n: GROUP_RULES[n](config) for n in rule_names if n in GROUP_RULES}
    makers = {**RECORD_RULES, **OPT_IN_RECORD_RULES}
    records = [makers[n](config) for n in rule_names if n in makers]
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
