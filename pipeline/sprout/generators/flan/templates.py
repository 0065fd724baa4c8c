"""FLAN-style template sets: prompts/flan/<task>.yaml, about ten templates per task, some inverted.

A template has `instruction`, optional `input` and `output`, each a Jinja string rendered by the same sandboxed
environment as every prompt. Placeholders are the data row's fields plus, for classification, `answer` (the row's
label id mapped to a word through promptsource-style `answer_choices`, per task or per template) and `options`
(the block `OPTIONS:` then `- word` per choice). A template is checked when its file loads: it may only use
placeholders the set declares, a non-inverted classification template ends with the options block and answers with
`{{ answer }}`, and an inverted one gives the answer and asks for a field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from jinja2 import TemplateError, meta
from jinja2.sandbox import SecurityError
from pydantic import Field, ValidationError, field_validator

from sprout.config.base import Strict
from sprout.config.loader import line_of, yaml_problem
from sprout.core.errors import UserError
from sprout.core.prompts import PROMPTS_DIR, RENDER_ERRORS, compiled, render_problem, sandbox
from sprout.core.seeds import describe_errors

SPECIAL = ("answer", "options")
PARTS = ("instruction", "input", "output")
OPTIONS_AT_END = re.compile(r"\{\{-?\s*options\s*-?\}\}\s*$")
AnswerChoices = list[str] | dict[str, str]


class FlanTemplate(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    instruction: str = Field(min_length=1)
    input: str = ""
    output: str = Field(min_length=1)
    inverted: bool = False
    answer_choices: AnswerChoices | None = None
    grown_from: str | None = None  # set by `sprout templates grow`: the template this one paraphrases

    def placeholders(self, parts: tuple[str, ...] = PARTS) -> set[str]:
        return set().union(*(variables(getattr(self, part)) for part in parts))


class FlanTaskFile(Strict):
    task: str
    kind: Literal["classification", "generation"]
    data: Path | None = None
    label_field: str | None = None
    answer_choices: AnswerChoices | None = None
    templates: list[FlanTemplate] = Field(min_length=1)

    @field_validator("templates")
    @classmethod
    def _unique_names(cls, templates: list[FlanTemplate]) -> list[FlanTemplate]:
        names = [t.name for t in templates]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"template names must be unique; repeated: {repeated}")
        return templates


def variables(source: str) -> set[str]:
    """The placeholders a Jinja string reads (`{{ text }}` -> {"text"})."""
    try:
        return set(meta.find_undeclared_variables(sandbox().parse(source)))
    except TemplateError as exc:
        raise ValueError(f"Jinja syntax error: {exc}") from None


def choice_word(choices: AnswerChoices, label) -> str | None:
    """promptsource-style: label id -> word. A list is indexed by integer ids, a mapping by the label as text."""
    if isinstance(choices, list):
        return choices[label] if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(
            choices) else None
    return choices.get(str(label))


def options_block(choices: AnswerChoices) -> str:
    words = choices if isinstance(choices, list) else list(choices.values())
    return "OPTIONS:\n" + "\n".join(f"- {word}" for word in words)


@dataclass(frozen=True)
class TemplateSet:
    name: str
    path: Path
    spec: FlanTaskFile
    sha: str
    text: str  # the file as read: line numbers for messages come from it, without reading the file again

    @property
    def classification(self) -> bool:
        return self.spec.kind == "classification"

    @cached_property
    def by_name(self) -> dict[str, FlanTemplate]:
        return {t.name: t for t in self.spec.templates}

    def choices(self, template: FlanTemplate) -> AnswerChoices:
        return template.answer_choices or self.spec.answer_choices

    def problems(self, template: FlanTemplate, fields: set[str]) -> list[str]:
        """Why a template cannot be used with rows that have `fields` (empty list: it can)."""
        used = template.placeholders()
        allowed = fields | (set(SPECIAL) if self.classification else set())
        problems = [f"uses unknown placeholder(s) {sorted(used - allowed)}; allowed: {sorted(allowed)}"] \
            if used - allowed else []
        if not used & fields:
            problems.append("uses no field of the data row")
        if not self.classification:
            return problems
        last = template.input if template.input.strip() else template.instruction
        if template.inverted:
            if "answer" not in template.placeholders(("instruction", "input")) or "options" in used:
                problems.append("an inverted classification template gives `{{ answer }}` and shows no options")
        else:
            if not OPTIONS_AT_END.search(last) or "options" in template.placeholders(("output",)):
                problems.append("a classification template ends its " + ("input" if template.input.strip() else
                                "instruction") + " with `{{ options }}` (the OPTIONS block)")
            if template.output.strip() != "{{ answer }}":
                problems.append("a classification template's output is exactly `{{ answer }}`")
        if template.answer_choices is not None and len(template.answer_choices) != len(self.spec.answer_choices):
            problems.append(f"answer_choices has {len(template.answer_choices)} entries; the task has "
                            f"{len(self.spec.answer_choices)}")
        return problems

    def render(self, template: FlanTemplate, row: dict) -> dict[str, str] | None:
        """instruction/input/output for one row, or None when a classification row's label has no answer word."""
        variables_ = dict(row)
        if self.classification:
            choices = self.choices(template)
            word = choice_word(choices, row.get(self.spec.label_field))
            if word is None:
                return None
            variables_ |= {"answer": word, "options": options_block(choices)}
        try:
            return {part: compiled(getattr(template, part)).render(**variables_).strip() for part in PARTS}
        except RENDER_ERRORS as exc:  # e.g. the sandbox refusing `{{ text.__class__ }}`
            raise UserError(f"{self.path}: template {template.name!r} cannot render: {render_problem(exc)}") from None

    def sandbox_refusal(self, template: FlanTemplate, fields: set[str]) -> str | None:
        """Render the template once with stand-in values: a template that reaches for Python internals is refused
        when its set is loaded, before any generator runs, not halfway through an expansion."""
        stand_ins = dict.fromkeys(fields, "x")
        if self.classification and self.choices(template):
            stand_ins |= {"answer": "x", "options": options_block(self.choices(template))}
        for part in PARTS:
            try:
                compiled(getattr(template, part)).render(**stand_ins)
            except SecurityError as exc:
                return f"{part}: {render_problem(exc)}"
            except Exception:  # noqa: BLE001, S112 - only the sandbox's refusal is judged here; real rows decide the rest
                continue
        return None


TEMPLATE_SUFFIXES = (".yaml", ".yml")


def template_path(task: str, root: Path = PROMPTS_DIR / "flan") -> Path:
    """A task name (a file under prompts/flan/), or the path of a template file of your own (it ends .yaml/.yml)."""
    return Path(task) if task.endswith(TEMPLATE_SUFFIXES) else root / f"{task}.yaml"


def task_name(task: str) -> str:
    """What lineage and reports call the task: the name, or a template file's stem."""
    return Path(task).stem if task.endswith(TEMPLATE_SUFFIXES) else task


def load_template_set(task: str, root: Path = PROMPTS_DIR / "flan") -> TemplateSet:
    path = template_path(task, root)
    if not path.is_file():
        known = sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []
        raise UserError(f"FLAN task {task!r}: no template file {path}. Known tasks: {', '.join(known) or 'none'}.")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
        spec = FlanTaskFile.model_validate(data)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML: {yaml_problem(exc)}. Fix the template file there.") from None
    except ValidationError as exc:
        raise UserError(f"{path}: invalid template file: {describe_errors(exc)}") from None
    problems = []
    text = raw.decode("utf-8")
    root_node = yaml.compose(text)
    if spec.kind == "classification" and (spec.label_field is None or spec.answer_choices is None):
        problems.append(f"{path}: a classification task needs `label_field` and `answer_choices`")
    for i, template in enumerate(spec.templates):
        try:
            template.placeholders()
        except ValueError as exc:
            problems.append(f"{path}:{line_of(root_node, ('templates', i))}: template {template.name!r}: {exc}")
    if problems:
        raise UserError(f"invalid template file {path}; nothing was run:", problems)
    return TemplateSet(task_name(task), path, spec, hashlib.sha256(raw).hexdigest()[:12], text)


def check_templates(templates: TemplateSet, fields: set[str]) -> None:
    """Every template must fit the rows it will render: one message per problem, naming file:line and template."""
    root_node = yaml.compose(templates.text)
    problems = [f"{templates.path}:{line_of(root_node, ('templates', i))}: template {t.name!r}: {problem}"
                for i, t in enumerate(templates.spec.templates) for problem in templates.problems(t, fields)]
    if problems:
        raise UserError(f"template(s) in {templates.path} do not fit the data (fields: {sorted(fields)}); "
                        "nothing was run:", problems)


def check_sandbox(templates: TemplateSet, fields: set[str]) -> None:
    """Render every template once with stand-in values: one that reaches for Python internals is named (file:line)
    when the set is loaded (`sprout data`, `templates expand`, `templates check`), before anything is written."""
    root_node = yaml.compose(templates.text)
    problems = [f"{templates.path}:{line_of(root_node, ('templates', i))}: template {t.name!r}: {refusal}"
                for i, t in enumerate(templates.spec.templates) if (refusal := templates.sandbox_refusal(t, fields))]
    if problems:
        raise UserError(f"template(s) in {templates.path} are refused by the sandbox; nothing was run:", problems)
