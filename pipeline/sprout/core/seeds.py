"""Seed loading and validation: Self-Instruct's seed format and Alpaca's, accepted as they are.

Every bad line is reported as `file:line: what is wrong` before anything runs, so a user fixes them all at once.

A seed item (one JSONL line, or one item of a JSON array) may be at most MAX_SEED_CHARS characters. A seed task is
a hand-written instruction with a few short instances (the longest in seeds/general.jsonl is about 1,100
characters) and is shown to the model as one of 6-8 examples per prompt; an item of 100,000 characters (~25,000
tokens) already overflows the embedded model's 8,192-token context several times over. A longer one is a file that
is not a seed set (a whole dataset or a document on one line, base64, a minified dump): refused with its line, not
sent to the model to fail or stall later.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record, content_hash

MAX_SEED_CHARS = 100_000  # per seed item; see the module docstring for why
SEED_FORMAT = ("one JSON object per line, Self-Instruct's {\"instruction\", \"instances\": [{\"input\", "
               "\"output\"}]} or Alpaca's {\"instruction\", \"input\", \"output\"}")


def _unicode_text(value: str) -> str:
    """JSON may spell lone surrogates (`\\ud800`): not characters, and no UTF-8 file, tokenizer or cache key takes
    them. Refused here, with the line, rather than crashing the run at its first write."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"holds a lone surrogate {value[exc.start]!r} (a broken \\u escape) at character "
                         f"{exc.start}; write the character itself or a valid \\u escape pair") from None
    return value


Text = Annotated[StrictStr, AfterValidator(_unicode_text)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


NonBlank = Annotated[Text, AfterValidator(_not_blank)]


class Instance(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: Text = ""
    output: Text


class SelfInstructRow(BaseModel):
    """Self-Instruct's seed format: one task with its instances."""

    model_config = ConfigDict(extra="ignore")
    id: Text | None = None
    name: Text | None = None
    instruction: NonBlank
    instances: list[Instance] = Field(min_length=1)
    is_classification: StrictBool = False


class AlpacaRow(BaseModel):
    """Alpaca's format: one instruction, an optional input, one output."""

    model_config = ConfigDict(extra="ignore")
    instruction: NonBlank
    input: Text = ""
    output: Text


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


def _too_long(size: int, max_chars: int) -> str:
    return (f"too long: {size:,} characters (a seed task may have at most {max_chars:,}); a seed is one short "
            "task, so check that this is the right file, or shorten the item")


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {exc}"  # e.g. an integer of more than 4,300 digits


def iter_json_items(text: str, max_chars: int | None = None) -> list[tuple[int, object | None, str | None]]:
    """(line, value, error) for each item of a JSON array or each line of JSONL. With `max_chars`, an item longer
    than that is an error (and is not parsed)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        decoder = json.JSONDecoder()
        pos = text.index("[") + 1
        items: list[tuple[int, object | None, str | None]] = []
        line, counted = 1, 0  # newlines are counted from the last item on: a 50k-item array stays linear
        try:
            # Parse the array item by item so every item keeps the line it starts on.
            while True:
                while pos < len(text) and text[pos] in " \t\r\n,":
                    pos += 1
                if pos >= len(text):
                    raise json.JSONDecodeError("unterminated array", text, pos)
                if text[pos] == "]":
                    if rest := text[pos + 1:].strip():
                        raise json.JSONDecodeError("extra data after the array", text, text.index(rest[0], pos + 1))
                    return items
                value, end = decoder.raw_decode(text, pos)
                line, counted = line + text.count("\n", counted, pos), pos
                too_long = max_chars is not None and end - pos > max_chars
                items.append((line, None, _too_long(end - pos, max_chars)) if too_long else (line, value, None))
                pos = end
        except json.JSONDecodeError as exc:
            return [(exc.lineno, None, f"invalid JSON: {exc.msg}")]
        except (ValueError, RecursionError) as exc:
            return [(text.count("\n", 0, pos) + 1, None, _json_error(exc))]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if max_chars is not None and len(line) > max_chars:
            items.append((number, None, _too_long(len(line), max_chars)))
            continue
        try:
            items.append((number, json.loads(line), None))
        except json.JSONDecodeError as exc:
            items.append((number, None, f"invalid JSON: {exc.msg} (column {exc.colno})"))
        except (ValueError, RecursionError) as exc:
            items.append((number, None, _json_error(exc)))
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


def read_text(path: Path, what: str = "seed file", hint: str = "Check the path (seeds live under seeds/).") -> str:
    """A UTF-8 text file (a leading BOM is dropped), or one UserError saying what is wrong with the path."""
    try:
        if not path.exists():
            raise UserError(f"{path}: no such {what}. {hint}")
        if path.is_dir():
            raise UserError(f"{path}: is a directory, not a {what}; pass the file(s) inside it.")
        if not path.is_file():
            raise UserError(f"{path}: not a regular file (a pipe, socket or device); pass a {what}.")
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{str(path)[:200]}: cannot read the {what}: {exc.strerror or exc}. {hint}") from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
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
        items = iter_json_items(text, max_chars=MAX_SEED_CHARS)
        if not items:
            what = "the file is empty" if not text.strip() else "an empty JSON array"
            problems.append(f"{path}: no seed tasks ({what}); add one JSON object per line.")
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
        raise UserError(f"{len(problems)} problem(s) in the seed files; nothing was run. Fix each line below "
                        f"({SEED_FORMAT}):", problems)
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
