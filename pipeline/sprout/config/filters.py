"""`filters:` config: which rules run at each level, the keys that configure them, and the LLM judges.

The rule keys are not written here: `FilterConfig` gets them from the rule registry (filters/registry.py), where each
rule declares what it reads, so a rule's name, keys, defaults and needs live in one place. What is here is what the
config decides: the default rule lists, the judges, and the checks that a listed rule is known and has what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator

from sprout.backends.config import BackendConfig
from sprout.config.base import SamplingConfig, Strict
from sprout.core.errors import UserError
from sprout.filters.registry import KNOWN_RULES, NEEDS, RULES, rule_keys

# Default rule lists per level; order is the order they run: cheap first, ROUGE-L last. (Generators whose records
# are instance-level keep theirs beside their config: PAIR_RULES, FLAN_RULES, Evol-Instruct's `rules`.)
TASK_RULES = ["word_count", "blacklist", "banned_prefix", "leading_char", "scaffold_copy", "rouge_l"]
INSTANCE_RULES = ["max_instances", "conflicting_outputs", "duplicate_instance", "empty_output", "input_equals_output",
                  "trailing_colon", "format_leak", "input_length", "output_length", "refusal", "punct_stopwords_only",
                  "exact_duplicate"]


def known_rules(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in KNOWN_RULES]
    if unknown:
        raise ValueError(f"unknown rule(s) {unknown}; valid rules: {', '.join(sorted(KNOWN_RULES))}")
    return names


_CHECK_RULES = AfterValidator(known_rules)
RuleList = Annotated[list[str], _CHECK_RULES]  # every field of this type is a rule list: see `rule_lists`


class JudgeConfig(Strict):
    """An LLM-judge rule: the prompt (under prompts/), which verdict words keep or drop, and its own model."""

    name: str
    prompt: str
    stage: Literal["tasks", "instances"] = "instances"
    generators: list[Literal["all", "self_instruct", "evol_instruct", "pair_synthesis", "flan", "filter"]] = Field(
        default_factory=lambda: ["all"], min_length=1, description="the generators whose records it judges (`filter`: "
        "sprout filter's rows); `all` by default")
    keep: list[str] | None = None  # default: the prompt file's `verdicts.keep`
    drop: list[str] | None = None
    backend: BackendConfig | None = None  # default: the run's backend
    sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=8)


def usable_judge(judge: JudgeConfig) -> JudgeConfig:
    """A judge's prompt loads and its verdict words can decide: checked with the config, so a bad judge is a config
    error before a run writes anything, not a crash after its first batch."""
    from sprout.core.prompts import load_prompt  # here, not at import: prompts is only read when a judge is configured

    try:
        prompt = load_prompt(judge.prompt)
    except UserError as exc:
        raise ValueError(f"judge {judge.name!r}: {exc.message} Fix: `prompt:` names a file under prompts/ without "
                         ".yaml, e.g. judge/quality") from None
    verdicts = prompt.meta.get("verdicts")
    verdicts = verdicts if isinstance(verdicts, dict) else {}
    keep, drop = judge.keep or verdicts.get("keep") or [], judge.drop or verdicts.get("drop") or []
    if not keep and not drop:
        raise ValueError(f"judge {judge.name!r}: no verdict words; set `keep:`/`drop:` here or `verdicts: {{keep: "
                         f"[...], drop: [...]}}` in {prompt.path}")
    overlap = sorted({str(v).lower() for v in keep} & {str(v).lower() for v in drop})
    if overlap:
        raise ValueError(f"judge {judge.name!r}: verdict word(s) {overlap} both keep and drop; list each once")
    return judge


UsableJudge = Annotated[JudgeConfig, AfterValidator(usable_judge)]


def rule_lists(model: BaseModel, path: str = "", skip: object = None) -> Iterator[tuple[str, list[str]]]:
    """Every rule list in a config section, at any depth (sections, list items), with its key path; `skip` is a
    section left out (the `filters:` section checks its own lists)."""
    for name, field in type(model).model_fields.items():
        value, key = getattr(model, name), f"{path}{name}"
        if value is skip:
            continue
        if _CHECK_RULES in field.metadata:
            yield key, value
        elif isinstance(value, BaseModel):
            yield from rule_lists(value, f"{key}.", skip)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from rule_lists(item, f"{key}.{i}.", skip)


def unmet_needs(model: BaseModel, filters: FilterConfig, filters_key: str = "") -> str | None:
    """The one check that what a listed rule needs (the registry's `needs`, e.g. eval files for `decontamination`)
    is configured under `filters:`, over every rule list of `model`; `filters_key` is how the message names that
    section from where `model` sits ("" inside `filters:` itself, "filters." from a whole run config)."""
    skip = None if model is filters else filters
    for key, names in rule_lists(model, skip=skip):
        for name in names:
            for need in map(NEEDS.__getitem__, RULES[name].needs):
                if not getattr(filters, need.key):
                    return (f"{key} lists `{name}` but `{filters_key}{need.key}` {need.missing}. Fix: {need.fix}, "
                            "or drop the rule")
    return None


class RuleLevels(Strict):
    """The keys of `filters:` that are no one rule's: the rule lists and the judges."""

    task_rules: RuleList = Field(default_factory=lambda: list(TASK_RULES))
    instance_rules: RuleList = Field(default_factory=lambda: list(INSTANCE_RULES))
    judges: list[UsableJudge] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs_met(self) -> RuleLevels:
        if problem := unmet_needs(self, self):
            raise ValueError(problem)
        return self


# The rule keys (min_words, rouge_l_threshold, decontaminate_against, ...) come from the registry.
FilterConfig = create_model("FilterConfig", __base__=RuleLevels, __module__=__name__, **rule_keys())
FilterConfig.__doc__ = "`filters:`: the rule lists, the judges, and every key a registered rule reads."
