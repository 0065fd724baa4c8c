"""A task spec: one user task (e.g. a political-promise detector) described well enough to synthesise pairs for it.

YAML under seeds/tasks/: the instruction, the kind (classification with a label set, or generation), an optional
Super-NaturalInstructions-style definition with positive and negative examples (each with an explanation), and the
seed examples. Every problem is reported as `file:line: key: what`, all at once, before any model work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from sprout.config.base import Strict
from sprout.config.loader import line_of, load_config
from sprout.core.errors import UserError


class TaskExample(Strict):
    input: str = Field(min_length=1)
    output: str = Field(min_length=1)
    explanation: str | None = None


class TaskSpec(Strict):
    name: str = Field(min_length=1)
    kind: Literal["classification", "generation"]
    instruction: str = Field(min_length=1)
    input_description: str = "one input for this task"
    labels: list[str] | None = None
    label_descriptions: dict[str, str] = Field(default_factory=dict)
    definition: str | None = None
    positive_examples: list[TaskExample] = Field(default_factory=list)
    negative_examples: list[TaskExample] = Field(default_factory=list)  # wrong outputs, with why they are wrong
    examples: list[TaskExample] = Field(min_length=1)

    @model_validator(mode="after")
    def _labels_fit_kind(self) -> TaskSpec:
        if self.kind == "classification":
            if not self.labels or len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
                raise ValueError("a classification task needs `labels:` with at least two distinct labels")
        elif self.labels or self.label_descriptions:
            raise ValueError("a generation task has no `labels`/`label_descriptions`; set `kind: classification`")
        return self

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"


def load_task_spec(path: Path) -> TaskSpec:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such task spec. Fix: pass a YAML file such as "
                        "seeds/tasks/political_promises.yaml.")
    spec = load_config(path, model=TaskSpec, what="task spec")
    if spec.is_classification:
        root = yaml.compose(path.read_text(encoding="utf-8"))
        problems = []
        for key in ("examples", "positive_examples", "negative_examples"):
            for i, example in enumerate(getattr(spec, key)):
                # A negative example shows a wrong output, but it must still be a label the task knows.
                if example.output not in spec.labels:
                    problems.append(f"{path}:{line_of(root, (key, i, 'output'))}: {key}[{i}].output "
                                    f"{example.output!r} is not one of the labels {spec.labels}")
        for label in spec.label_descriptions:
            if label not in spec.labels:
                problems.append(f"{path}:{line_of(root, ('label_descriptions', label))}: label_descriptions has "
                                f"{label!r}, which is not one of the labels {spec.labels}")
        shown = {e.output for e in spec.examples}
        problems += [f"{path}: label {label!r} has no example; add one under `examples:` (output-first prompts "
                     "show an example of each label)" for label in spec.labels if label not in shown]
        if problems:
            raise UserError("invalid task spec; nothing was run:", problems)
    return spec


def load_specs(entries: list) -> list[TaskSpec]:
    """Each task spec, checked against its config entry (label_distribution must name the spec's labels)."""
    specs = []
    for i, entry in enumerate(entries):
        spec = load_task_spec(entry.task)
        if entry.label_distribution is not None:
            if not spec.is_classification:
                raise UserError(f"pair_synthesis[{i}].label_distribution: {entry.task} is a generation task; "
                                "remove the key (it has no labels).")
            unknown = sorted(set(entry.label_distribution) - set(spec.labels))
            if unknown:
                raise UserError(f"pair_synthesis[{i}].label_distribution: unknown label(s) {unknown}; the labels of "
                                f"{entry.task} are {spec.labels}.")
        specs.append(spec)
    return specs
