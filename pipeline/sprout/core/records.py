"""The one row type that flows through sprout and lands in JSONL, with its lineage; the reject that carries it
when a rule drops it, and how a rejects file is read back."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["generation", "classification"]


def content_hash(*parts: str, length: int = 16) -> str:
    """Stable id from text parts: the same content always gets the same id, across runs and machines."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


class Lineage(BaseModel):
    """Where a record came from: enough to reproduce the call that made it and to follow its family tree."""

    model_config = ConfigDict(extra="forbid")

    generator: str
    operation: str | None = None
    task_id: str | None = None  # groups the instances of one generated task
    parent_ids: list[str] = Field(default_factory=list)
    seed_ids: list[str] = Field(default_factory=list)
    round: int = 0
    prompts: dict[str, str] = Field(default_factory=dict)  # prompt name -> content hash
    model: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    # Evol-Instruct: the evolution's root (the row it started from), every ancestor from the root on, and the
    # operation of each step (this record's own last): the chain a person follows from a record back to its source.
    root_id: str | None = None
    chain: list[str] | None = None
    operations: list[str] | None = None
    stage: str | None = None  # the filter stage that accepted it (`sprout inspect` facets on it)


class Record(BaseModel):
    """One instruction-tuning example (instruction, optional input, output) with its lineage."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    instruction: str
    input: str = ""
    output: str = ""
    kind: Kind = "generation"
    label: str | None = None
    lineage: Lineage
    raw: str | None = None  # the model text a parse failure came from, kept so rejects are inspectable

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = content_hash(self.instruction, self.input, self.output)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False, sort_keys=False)


class Rejection(BaseModel):
    """A dropped candidate: the record as far as it got, the rule that dropped it and why."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    reason: str
    record: Record
    score: float | None = None  # e.g. the ROUGE-L score against the most similar accepted instruction
    stage: str | None = None  # the filter stage that dropped it
    # A near-duplicate drop's neighbour: {"id": the accepted record's id (None for a seed or plain text),
    # "fields": {field: its text}}, so a reviewer sees both side by side.
    neighbour: dict[str, Any] | None = None

    def to_json(self) -> str:
        row: dict[str, Any] = {"rule": self.rule, "reason": self.reason}
        if self.score is not None:
            row["score"] = self.score
        if self.stage is not None:
            row["stage"] = self.stage
        if self.neighbour is not None:
            row["neighbour"] = self.neighbour
        row["record"] = self.record.model_dump(mode="json", exclude_none=True)
        return json.dumps(row, ensure_ascii=False)


def prompt_text(record: Record) -> str:
    """The instruction as a model sees it: its input, if any, goes with it (Evol-Instruct's rewrite prompts and the
    equality judge's `parent`)."""
    return f"{record.instruction}\n\n{record.input}" if record.input.strip() else record.instruction


def has_rejection(path: Path, rule: str) -> bool:
    """Whether a rejects file (one Rejection a line, as rejected.jsonl) holds a reject of `rule`.

    Each line is read as JSON and its `rule` compared, so the key's place in the line and the writer's spacing do not
    matter, and a record whose text mentions the rule is not taken for it. A line that is not a JSON object (the torn
    last line of a killed run) holds no reject. Lines that do not contain a plain rule name at all are skipped
    unparsed: one pass over a large file, parsing only the few lines that can match.
    """
    path = Path(path)
    if not path.exists():
        return False
    needle = rule.encode("utf-8") if re.fullmatch(r"[A-Za-z0-9_:.\-]+", rule) else b""  # JSON writes these as is
    with open(path, "rb") as handle:
        for line in handle:
            if needle not in line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("rule") == rule:
                return True
    return False
