"""The rule registry: every filter rule declared once — its name, its level, the `filters:` keys it reads (pydantic
field definitions, with their defaults), what it needs, and how it is made.

Everything else is derived from here: the rule names a config may list (KNOWN_RULES), the rule keys of
`FilterConfig` (config/filters.py builds them with `pydantic.create_model`), the check that a listed rule's needs
are met (config/filters.py, `unmet_needs`), and the rules a stage is built from (filters/build.py). Adding a rule is
one entry here; which rules run by default is the config's business (TASK_RULES, INSTANCE_RULES, ...).

Levels: `record` rules judge one candidate (filters/rules.py, dedup_rules.py); `group` rules judge a group together
(one task's instances); `batch` rules judge all survivors in one call (the LLM judges, configured under
`filters.judges` rather than listed by name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from sprout.filters import rules as r
from sprout.filters.decontamination_index import DecontaminationIndex
from sprout.filters.dedup_rules import ExactDuplicate, RougeDedup
from sprout.filters.eval_files import cached_index
from sprout.filters.row_index import DedupOn

Level = Literal["record", "group", "batch"]
KeyDecl = tuple[Any, Any]  # (type, default or pydantic Field(...)): what `pydantic.create_model` takes per field


@dataclass(frozen=True)
class Need:
    """Something a rule cannot work without, met by a non-empty `filters:` key."""

    key: str
    missing: str  # how the message says it is missing
    fix: str


NEEDS = {"eval_files": Need("decontaminate_against", "names no eval file",
                            "add `decontaminate_against: [path/to/eval.jsonl]` under `filters:`")}


@dataclass(frozen=True)
class RuleSpec:
    name: str
    level: Level
    make: Callable[[Any], Any]  # the filters config -> a Rule (record level) or a group rule (group level)
    keys: Mapping[str, KeyDecl] = field(default_factory=dict)
    needs: tuple[str, ...] = ()


# -- keys read by more than one rule: declared once, shared by identity ----------------------------------------------

ROUGE_L_THRESHOLD: KeyDecl = (float, Field(0.7, ge=0, le=1))
ROUGE_TOKENIZER: KeyDecl = (Literal["rouge", "unicode"], "rouge")

BLACKLIST = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]
SCAFFOLD = ["#The Given Prompt#", "#Rewritten Prompt#", "#Created Prompt#", "given prompt", "rewritten prompt",
            "created prompt"]
REFUSALS = ["sorry", "as an AI", "as a language model", "I cannot", "I can't", "I am unable", "I'm unable",
            "I apologize", "I won't be able"]


def _eval_file(path: Path) -> Path:
    """An eval file for the `decontamination` rule exists: checked with the config, not when the stage is built."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise ValueError(f"{path}: {what}. Fix: name an eval file (.jsonl, .json array, or .txt with one item a line)")
    return path


def eval_index(config) -> DecontaminationIndex:
    """The index over the eval files: built once per run (cached while the files are unchanged), not per stage."""
    index, _ = cached_index(config.decontaminate_against, config.decontamination_n, config.decontamination_min_tokens,
                            config.decontamination_eval_field)
    return index


def _list(*items: str) -> KeyDecl:
    return (list[str], Field(default_factory=lambda: list(items)))


SPECS = [
    RuleSpec("word_count", "record", lambda c: r.WordCount("instruction", c.min_words, c.max_words, "word_count"),
             {"min_words": (int, Field(4, ge=0, description="keep instructions with more than 3 words")),
              "max_words": (int, Field(150, gt=0))}),
    RuleSpec("input_length", "record", lambda c: r.WordCount("input", 0, c.input_max_words, "input_length"),
             {"input_max_words": (int, Field(1000, gt=0))}),
    RuleSpec("output_length", "record",
             lambda c: r.WordCount("output", c.output_min_words, c.output_max_words, "output_length"),
             {"output_min_words": (int, Field(1, ge=0)), "output_max_words": (int, Field(1000, gt=0))}),
    RuleSpec("blacklist", "record", lambda c: r.Blacklist(c.blacklist), {"blacklist": _list(*BLACKLIST)}),
    RuleSpec("banned_prefix", "record", lambda c: r.BannedPrefix(c.banned_prefixes),
             {"banned_prefixes": _list("Write a program")}),
    RuleSpec("format_leak", "record", lambda c: r.FormatLeak(c.format_markers),
             {"format_markers": _list("Input:", "Output:", "Class label:", "Task:")}),
    RuleSpec("scaffold_copy", "record", lambda c: r.ScaffoldCopy(c.scaffold_phrases),
             {"scaffold_phrases": _list(*SCAFFOLD)}),
    RuleSpec("refusal", "record", lambda c: r.Refusal(c.refusal_phrases, c.refusal_max_words),
             {"refusal_phrases": _list(*REFUSALS),
              "refusal_max_words": (int, Field(80, gt=0, description="a refusal phrase drops outputs shorter than "
                                               "this"))}),
    RuleSpec("rouge_l", "record",
             lambda c: RougeDedup(c.rouge_l_threshold, c.rouge_tokenizer, track_scores=True, dedup_on=c.dedup_on),
             {"rouge_l_threshold": ROUGE_L_THRESHOLD, "rouge_tokenizer": ROUGE_TOKENIZER,
              "dedup_on": (DedupOn, Field("instruction", description="what `rouge_l` compares: instruction "
                                          "(Self-Instruct's task-level rule), instruction+input, or all (instruction, "
                                          "input and output: rows are near-duplicates only when each field is)"))}),
    RuleSpec("input_rouge_l", "record",
             lambda c: RougeDedup(c.input_rouge_l_threshold, c.rouge_tokenizer, track_scores=True, field="input",
                                  name="input_rouge_l"),
             {"input_rouge_l_threshold": (float, Field(0.7, ge=0, le=1, description="input_rouge_l: for "
                                                       "synthesised inputs")),
              "rouge_tokenizer": ROUGE_TOKENIZER}),
    RuleSpec("leading_char", "record", lambda c: r.LeadingCharacter()),
    RuleSpec("empty_output", "record", lambda c: r.EmptyOutput()),
    RuleSpec("input_equals_output", "record", lambda c: r.InputEqualsOutput()),
    RuleSpec("trailing_colon", "record", lambda c: r.TrailingColon()),
    RuleSpec("punct_stopwords_only", "record", lambda c: r.PunctStopwordsOnly()),
    RuleSpec("exact_duplicate", "record", lambda c: ExactDuplicate()),
    RuleSpec("max_instances", "group", lambda c: r.max_instances(c.max_instances_per_task),
             {"max_instances_per_task": (int, Field(5, gt=0))}),
    RuleSpec("conflicting_outputs", "group",
             lambda c: partial(r.conflicting_outputs, threshold=c.rouge_l_threshold, mode=c.rouge_tokenizer),
             {"rouge_l_threshold": ROUGE_L_THRESHOLD, "rouge_tokenizer": ROUGE_TOKENIZER}),
    RuleSpec("duplicate_instance", "group", lambda c: r.duplicate_instances),
    # Opt-in (in no default list): drops records sharing an n-gram with an eval item (see runs/decontaminate.py).
    RuleSpec("decontamination", "record", lambda c: r.Decontamination(eval_index(c), c.decontamination_fields),
             {"decontaminate_against": (list[Annotated[Path, AfterValidator(_eval_file)]], Field(
                 default_factory=list, description="eval files: drop records sharing an n-gram with any of their "
                 "items")),
              "decontamination_n": (int, Field(13, gt=0, description="tokens per n-gram")),
              "decontamination_min_tokens": (int, Field(8, gt=0, description="an eval text shorter than n tokens "
                                                        "but at least this long must appear whole; shorter ones "
                                                        "are not indexed")),
              "decontamination_fields": (list[Literal["instruction", "input", "output"]], Field(
                  default_factory=lambda: ["instruction", "input"], min_length=1, description="record fields "
                  "checked")),
              "decontamination_eval_field": (str | None, Field(None, description="index only this field of each "
                                                               "eval item (default: every string in it, nested ones "
                                                               "too)"))},
             needs=("eval_files",)),
]
RULES: dict[str, RuleSpec] = {spec.name: spec for spec in SPECS}
KNOWN_RULES = frozenset(RULES)


def rule_keys() -> dict[str, KeyDecl]:
    """Every `filters:` key a rule reads, in declaration order, for `FilterConfig`. A key read by several rules is
    declared once and shared: two different declarations of one key would be two defaults, so they are refused."""
    keys: dict[str, KeyDecl] = {}
    for spec in SPECS:
        for key, decl in spec.keys.items():
            if keys.setdefault(key, decl) is not decl:
                raise TypeError(f"rule {spec.name!r} declares `{key}` again; share the first declaration")
    return keys


def makers(level: Level, with_needs: bool | None = None) -> dict[str, Callable[[Any], Any]]:
    """Name -> factory for the rules of one level; `with_needs` False/True: only those without/with needs."""
    return {spec.name: spec.make for spec in SPECS if spec.level == level
            and (with_needs is None or bool(spec.needs) == with_needs)}


RECORD_RULES = makers("record", with_needs=False)
OPT_IN_RECORD_RULES = makers("record", with_needs=True)  # need something named in the config (eval files)
GROUP_RULES = makers("group")
