"""`sprout export`: sprout records, Alpaca rows or `messages` rows -> the formats other trainers read.

- `alpaca`: a JSON array of {instruction, input, output}, Alpaca's own format (alpaca_data.json) and nothing else,
  so any Alpaca loader takes it. A `messages` row converts when it is one user turn and one assistant turn; a
  multi-turn row, or one with a system turn, has no place in Alpaca and is reported with its line, not dropped.
- `messages`: JSONL of {"id", "messages": [{role, content}]}, the OpenAI chat fine-tuning form, which TRL's
  SFTTrainer, axolotl and LLaMA-Factory read as it is. `--no-id` leaves out `id` (bare {"messages"} rows).
- `sharegpt`: a JSON array of {"id", "conversations": [{"from": "system"|"human"|"gpt", "value"}]}. An array, not
  JSONL, because that is how the ShareGPT/Vicuna dumps are laid out and FastChat's trainer reads them with
  `json.load`; `datasets`, axolotl and LLaMA-Factory read arrays just as well.
- `hf`: `DatasetDict({"train", "validation"}).save_to_disk(OUT)`, split with the trainer's seeded split
  (`chat_rows.split`). Columns: `id`, `messages`, and the flat fields `instruction`, `input`, `output`, `kind`,
  `label`, `lineage` (lineage as a JSON string, so every row has the same Arrow schema whatever its generator
  recorded). Fields the source row did not have are null (an Alpaca row has no kind, label or lineage; a
  `messages` row no flat fields).

Lineage in `messages` and `sharegpt` rows: only the record's `id`, its content hash. It finds the full lineage in
examples.jsonl (`sprout show ID`) and lets a row be traced through training and evaluation; the nested lineage
itself (free-form `sampling` and `prompts` maps that differ by generator) would bloat every row and give
`load_dataset` a schema to infer across rows, and these formats have no field for it. The `hf` export keeps it all.

The user turn is built as the trainer builds it (`sprout.datasets.chat_rows.to_messages`): the instruction, plus
"\\n\\n" + input when there is an input. `--system-prompt` goes first in every conversation that has no system turn
of its own (a `messages` row's own system turn is kept). Every row that cannot be exported is reported as
`file:line: what is wrong`, all at once, and nothing is written; the output appears whole or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from sprout.core.errors import UserError
from sprout.core.records import Record, content_hash
from sprout.core.seeds import describe_errors
from sprout.datasets.chat_rows import split, to_messages
from sprout.io.dataset_io import read_rows
from sprout.io.jsonl import atomic_directory, atomic_write

FORMATS = ("alpaca", "messages", "sharegpt", "hf")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
FLAT_FIELDS = ("instruction", "input", "output", "kind", "label", "lineage")
DEFAULT_VALIDATION_SHARE = 0.1
DEFAULT_SEED = 42


@dataclass
class Item:
    """One source row, ready for every format: its conversation and the flat fields it had (None: it had not)."""

    line: int
    id: str
    messages: list[dict[str, str]]
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    kind: str | None = None
    label: str | None = None
    lineage: str | None = None  # JSON text

    def hf_row(self) -> dict:
        return {"id": self.id, "messages": self.messages, **{name: getattr(self, name) for name in FLAT_FIELDS}}


def _string(row: dict, name: str, required: bool) -> str:
    value = row.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    return value


def _with_system(messages: list[dict[str, str]], system_prompt: str | None) -> list[dict[str, str]]:
    if not system_prompt or any(m["role"] == "system" for m in messages):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def to_item(line: int, row: object, system_prompt: str | None) -> Item:
    """A source row -> Item; ValueError says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "lineage" in row:
        try:
            record = Record.model_validate(row)
        except ValidationError as exc:
            raise ValueError(f"not a sprout record: {describe_errors(exc)}") from None
        dumped = record.model_dump(mode="json", exclude_none=True)
        return Item(line, record.id, _with_system(to_messages(dumped), system_prompt), record.instruction,
                    record.input, record.output, record.kind, record.label,
                    json.dumps(dumped["lineage"], ensure_ascii=False))
    row_id = row.get("id")
    if row_id is not None and (not isinstance(row_id, str) or not row_id):
        raise ValueError(f"id: expected a non-empty string, got {row_id!r}")
    if "messages" in row:
        messages = to_messages(row)
        return Item(line, row_id or content_hash(*(f"{m['role']}\x1e{m['content']}" for m in messages)),
                    _with_system(messages, system_prompt))
    if "instruction" in row:
        messages = to_messages(row)  # checks instruction and output are there
        instruction, extra, output = (_string(row, "instruction", True), _string(row, "input", False),
                                      _string(row, "output", True))
        return Item(line, row_id or content_hash(instruction, extra, output), _with_system(messages, system_prompt),
                    instruction, extra, output)
    if "text" in row:
        raise ValueError("a `text` row (plain pretraining text) has no instruction or conversation to export")
    raise ValueError(f"no `instruction`, `messages` or `lineage` field (has: {sorted(row)})")


def alpaca_row(item: Item) -> dict[str, str]:
    if item.instruction is not None:
        return {"instruction": item.instruction, "input": item.input or "", "output": item.output or ""}
    roles = [m["role"] for m in item.messages]
    if "system" in roles:
        raise ValueError("has a system turn, and Alpaca has no field for one; export it as messages or sharegpt")
    if roles != ["user", "assistant"]:
        raise ValueError(f"{len(roles)} turns ({', '.join(roles)}): Alpaca holds one user turn and one answer; "
                         "export it as messages or sharegpt")
    return {"instruction": item.messages[0]["content"], "input": "", "output": item.messages[1]["content"]}


def read_items(path: Path, system_prompt: str | None = None, fmt: str = "messages") -> list[Item]:
    """Every row as an Item, or one UserError listing every row that cannot be exported as `fmt`."""
    path = Path(path)
    layout, rows = read_rows(path)
    if layout == "txt":
        raise UserError(f"{path}: a .txt file holds plain lines, not instruction rows; pass sprout records, Alpaca "
                        "rows or `messages` rows as .jsonl or .json.")
    items, problems = [], []
    for line, row in rows:
        try:
            item = to_item(line, row, system_prompt)
            json.dumps(item.hf_row(), ensure_ascii=False).encode("utf-8")
            if fmt == "alpaca":
                alpaca_row(item)
            items.append(item)
        except UnicodeEncodeError as exc:
            problems.append(f"{path}:{line}: holds a lone surrogate {exc.object[exc.start]!r} (a broken \\u escape); "
                            "write the character itself or a valid \\u escape pair")
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
    if problems:
        raise UserError(f"{len(problems)} row(s) in {path} cannot be exported as {fmt}; nothing was written:",
                        problems[:50])
    if not items:
        raise UserError(f"{path}: no rows to export.")
    return items


def _check_out(out: Path, fmt: str, force: bool) -> None:
    if fmt == "hf":
        if out.is_file():
            raise UserError(f"--out {out} is a file; --format hf writes a folder. Fix: pass a folder path.")
        if out.exists():
            if not force:
                raise UserError(f"--out {out} exists. Fix: pass another --out, or --force to replace it.")
            if any(out.iterdir()) and not (out / "dataset_dict.json").is_file():
                raise UserError(f"--out {out} is a folder that holds no earlier hf export (no dataset_dict.json); "
                                "--force replaces only those. Fix: pass a new or empty folder.")
    elif out.is_dir():
        raise UserError(f"--out {out} is a folder; --format {fmt} writes one file. Fix: pass a file path.")
    elif out.exists() and not force:
        raise UserError(f"--out {out} exists. Fix: pass another --out, or --force to replace it.")


def _save_hf(items: list[Item], out: Path, share: float, seed: int) -> tuple[int, int]:
    from datasets import Dataset, DatasetDict, Features, List, Value
    from datasets.utils import logging as datasets_logging

    text = Value("string")
    features = Features({"id": text, "messages": List({"role": text, "content": text}),
                         **{name: text for name in FLAT_FIELDS}})
    train, validation = split(items, share, seed)

    def columns(part: list[Item]) -> dict[str, list]:  # not from_list: it loses the schema of an empty split
        rows = [item.hf_row() for item in part]
        return {name: [row[name] for row in rows] for name in features}

    splits = DatasetDict({name: Dataset.from_dict(columns(part), features=features)
                          for name, part in (("train", train), ("validation", validation))})
    shown = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty folder: atomic_directory renames the staged one into its place
        with atomic_directory(out) as staging:
            # An empty split saved with the default (zero) shards cannot be loaded back (datasets 5.2): give it one.
            splits.save_to_disk(str(staging), num_shards={name: 1 for name, part in splits.items() if not len(part)})
    finally:
        if shown:
            datasets_logging.enable_progress_bar()
    return len(train), len(validation)


def export(input_path: Path, fmt: str, out: Path, *, system_prompt: str | None = None,
           validation_share: float | None = None, seed: int | None = None, ids: bool = True,
           force: bool = False) -> dict:
    """Export INPUT as `fmt` to `out`; returns a summary. Raises UserError for anything the user can fix."""
    out = Path(out)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}.")
    if fmt != "hf" and (validation_share is not None or seed is not None):
        raise UserError(f"--validation-share and --seed split the hf export; --format {fmt} writes one file. "
                        "Fix: drop them, or use --format hf.")
    if fmt == "alpaca" and system_prompt:
        raise UserError("--system-prompt: Alpaca rows have no system turn. Fix: drop it, or export as messages, "
                        "sharegpt or hf.")
    if fmt == "hf" and not ids:
        raise UserError("--no-id: the hf export always keeps the id column (it carries every field).")
    share = DEFAULT_VALIDATION_SHARE if validation_share is None else validation_share
    if not 0 <= share < 1:
        raise UserError(f"--validation-share {share}: use a share from 0 (no validation rows) to below 1.")
    _check_out(out, fmt, force)
    items = read_items(Path(input_path), system_prompt, fmt)
    summary = {"format": fmt, "rows": len(items), "out": str(out)}
    id_field = (lambda item: {"id": item.id}) if ids else (lambda item: {})
    if fmt == "alpaca":
        rows = [alpaca_row(item) for item in items]
        atomic_write(out, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "messages":
        atomic_write(out, "".join(json.dumps({**id_field(item), "messages": item.messages}, ensure_ascii=False)
                                  + "\n" for item in items))
    elif fmt == "sharegpt":
        rows = [{**id_field(item), "conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]}
                                                     for m in item.messages]} for item in items]
        atomic_write(out, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        summary["train"], summary["validation"] = _save_hf(items, out, share, DEFAULT_SEED if seed is None else seed)
    return summary


def describe(summary: dict) -> str:
    sizes = f": {summary['train']} train, {summary['validation']} validation" if summary["format"] == "hf" else ""
    return f"exported {summary['rows']} rows as {summary['format']}{sizes} -> {summary['out']}"
