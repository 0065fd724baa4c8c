"""Seed loading and validation: Self-Instruct's seed format and Alpaca's, accepted as they are.

Every bad line is reported as `file:line: what is wrong` before anything runs, so a user fixes them all at once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from sprout.errors import UserError
from sprout.records import Lineage, Record, content_hash


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


NonBlank = Annotated[StrictStr, AfterValidator(_not_blank)]


class Instance(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: StrictStr = ""
    output: StrictStr


class SelfInstructRow(BaseModel):
    """Self-Instruct's seed format: one task with its instances."""

    model_config = ConfigDict(extra="ignore")
    id: StrictStr | None = None
    name: StrictStr | None = None
    instruction: NonBlank
    instances: list[Instance] = Field(min_length=1)
    is_classification: StrictBool = False


class AlpacaRow(BaseModel):
    """Alpaca's format: one instruction, an optional input, one output."""

    model_config = ConfigDict(extra="ignore")
    instruction: NonBlank
    input: StrictStr = ""
    output: StrictStr


@dataclass(frozen=True)
class SeedTask:
    """A hand-written task: what the generators show the model and what the dedup rule compares against."""

    id: str
    name: str
    instruction: str
    instances: tuple[tuple[str, str], ...]  # (input, output)
    is_classification: bool
    source: str  # file:line

    @property
    def labels(self) -> list[str]:
        return sorted({output.strip() for _, output in self.instances}) if self.is_classification else []

    def to_records(self) -> list[Record]:
        kind = "classification" if self.is_classification else "generation"
        lineage = Lineage(generator="seed", task_id=self.id, seed_ids=[self.id])
        return [
            Record(instruction=self.instruction, input=inp, output=out, kind=kind,
                   label=out.strip() if self.is_classification else None, lineage=lineage)
            for inp, out in self.instances
        ]


def describe_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "row"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "missing field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def iter_json_items(text: str) -> list[tuple[int, object | None, str | None]]:
    """(line, value, error) for each item of a JSON array or each line of JSONL."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        decoder = json.JSONDecoder()
        try:
            # Parse the array item by item so every item keeps the line it starts on.
            pos = text.index("[") + 1
            items: list[tuple[int, object | None, str | None]] = []
            while True:
                while pos < len(text) and text[pos] in " \t\r\n,":
                    pos += 1
                if pos >= len(text):
                    raise json.JSONDecodeError("unterminated array", text, pos)
                if text[pos] == "]":
                    return items
                value, end = decoder.raw_decode(text, pos)
                items.append((text.count("\n", 0, pos) + 1, value, None))
                pos = end
        except json.JSONDecodeError as exc:
            return [(exc.lineno, None, f"invalid JSON: {exc.msg}")]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line), None))
        except json.JSONDecodeError as exc:
            items.append((number, None, f"invalid JSON: {exc.msg} (column {exc.colno})"))
    return items


def _parse_item(value: object, path: Path, line: int) -> SeedTask:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    source = f"{path}:{line}"
    if "instances" in value:
        row = SelfInstructRow.model_validate(value)
        task_id = row.id or f"{path.stem}_{line}"
        return SeedTask(task_id, row.name or task_id, row.instruction.strip(),
                        tuple((i.input.strip(), i.output.strip()) for i in row.instances),
                        row.is_classification, source)
    alpaca = AlpacaRow.model_validate(value)
    task_id = f"{path.stem}_alpaca_{content_hash(alpaca.instruction, alpaca.input, alpaca.output, length=8)}"
    return SeedTask(task_id, task_id, alpaca.instruction.strip(),
                    ((alpaca.input.strip(), alpaca.output.strip()),), False, source)


def read_text(path: Path) -> str:
    if not path.exists():
        raise UserError(f"{path}: no such seed file. Check the path (seeds live under seeds/).")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; pass the seed files inside it (e.g. {path}/*.jsonl).")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte {exc.start}); save the file as UTF-8.") from None


def load_seeds(paths: list[Path]) -> list[SeedTask]:
    """Load and validate seed files; raise one UserError listing every bad line in every file."""
    tasks: list[SeedTask] = []
    problems: list[str] = []
    for path in paths:
        try:
            text = read_text(Path(path))
        except UserError as exc:
            problems.append(exc.message)
            continue
        items = iter_json_items(text)
        if not items:
            problems.append(f"{path}: no seed tasks (the file is empty); add one JSON object per line.")
        for line, value, error in items:
            if error:
                problems.append(f"{path}:{line}: {error}")
                continue
            try:
                tasks.append(_parse_item(value, Path(path), line))
            except ValidationError as exc:
                problems.append(f"{path}:{line}: {describe_errors(exc)}")
            except ValueError as exc:
                problems.append(f"{path}:{line}: {exc}")
    first_seen: dict[str, str] = {}
    for task in tasks:
        if task.id not in first_seen:
            first_seen[task.id] = task.source
        elif task.id.startswith(f"{Path(task.source.rsplit(':', 1)[0]).stem}_alpaca_"):
            problems.append(f"{task.source}: exact duplicate of {first_seen[task.id]}; remove one of them.")
        else:
            problems.append(f"{task.source}: duplicate id {task.id!r} (first at {first_seen[task.id]}); "
                            "ids must be unique.")
    if problems:
        raise UserError(f"{len(problems)} problem(s) in the seed files; nothing was run:", problems)
    return tasks


def summarize(tasks: list[SeedTask]) -> dict[str, int]:
    counts = Counter("classification" if t.is_classification else "generation" for t in tasks)
    return {
        "tasks": len(tasks),
        "classification": counts["classification"],
        "generation": counts["generation"],
        "instances": sum(len(t.instances) for t in tasks),
        "with_input": sum(any(i for i, _ in t.instances) for t in tasks),
    }
