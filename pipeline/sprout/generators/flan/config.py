"""`generators.flan:` (and `sprout templates expand`'s `flan:`) FLAN-style expansion, beside its generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from sprout.config.base import Strict
from sprout.config.filters import RuleList

# FLAN expansion renders human-written rows: no instruction dedup (templates of one row share their text).
FLAN_RULES = ["empty_output", "input_equals_output", "format_leak", "input_length", "output_length",
              "exact_duplicate"]


class FlanTaskConfig(Strict):
    """One template set under prompts/flan/ and the rows it expands (by default the file its `data:` names)."""

    task: str = Field(description="a task name under prompts/flan/, or the path of a template file (.yaml)")
    data: Path | None = Field(None, description="any datasets-loadable local file or saved dataset folder")
    split: str = "train"
    fields: dict[str, str] = Field(default_factory=dict, description="placeholder -> column of the data file")
    max_rows: int | None = Field(None, gt=0)


def _task_entries(value: Any) -> Any:
    """A task may be given by its name alone: `tasks: [sentiment]`."""
    return [{"task": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value


class FlanConfig(Strict):
    """FLAN-style expansion: every sampled (row, template) pair becomes a record; no model call."""

    tasks: Annotated[list[FlanTaskConfig], BeforeValidator(_task_entries)] = Field(min_length=1)
    templates_per_row: int | None = Field(3, gt=0, description="templates sampled per row; null = all of them")
    inverted_share: float = Field(0.3, ge=0, le=1, description="share of the sampled templates that are inverted")
    rules: RuleList = Field(default_factory=lambda: list(FLAN_RULES))
