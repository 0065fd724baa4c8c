"""Reading datasets users already have: plain text (one item a line), JSONL, or a JSON array; rows in sprout's
Record form, Alpaca's (instruction, input, output) form, or any object with the field asked for.

Every bad row is reported as `file:line: what is wrong`, all at once, before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record
from sprout.core.seeds import describe_errors, iter_json_items, read_text
from sprout.io.jsonl import atomic_write


def read_rows(path: Path) -> tuple[str, list[tuple[int, object]]]:
    """(format, [(line, row)]) where format is "txt", "jsonl" or "json"; txt rows are the stripped lines."""
    path = Path(path)
    text = read_text(path, "input file", "Check the path.")
    if path.suffix == ".txt":
        return "txt", [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    items = iter_json_items(text)
    problems = [f"{path}:{line}: {error}" for line, _, error in items if error]
    if problems:
        raise UserError(f"{len(problems)} unreadable row(s) in {path}; nothing was written:", problems)
    return ("json" if text.lstrip().startswith("[") else "jsonl"), [(line, value) for line, value, _ in items]


def field_texts(path: Path, rows: list[tuple[int, object]], field: str | None) -> list[str]:
    if field is None:
        return [str(row) for _, row in rows]
    texts, problems = [], []
    for line, row in rows:
        value = row.get(field) if isinstance(row, dict) else None
        if not isinstance(value, str):
            fields = sorted(row) if isinstance(row, dict) else type(row).__name__
            problems.append(f"{path}:{line}: no string field {field!r} (has: {fields})")
        texts.append(value or "")
    if problems:
        raise UserError(f"{len(problems)} row(s) without {field!r}; pick the field with --field:", problems[:50])
    return texts


def write_rows(path: Path, fmt: str, rows: list[object]) -> None:
    if fmt == "txt":
        atomic_write(path, "".join(f"{row}\n" for row in rows))
    elif fmt == "json":
        atomic_write(path, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        atomic_write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


ROLES = ("system", "user", "assistant")


def _messages_record(messages: object, source: Lineage) -> Record:
    """A chat row as a record: the first user turn is the instruction, the last assistant turn the output, and what
    lies between (a system turn, earlier turns) the input as `role: content` blocks, so every word is compared."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: expected a non-empty list of {role, content} objects")
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
                message.get("content"), str):
            raise ValueError(f"messages[{k}]: expected {{role: system|user|assistant, content: string}}")
    first_user = next((k for k, m in enumerate(messages) if m["role"] == "user"), None)
    if first_user is None or not messages[first_user]["content"].strip():
        raise ValueError("messages: no user turn with text")
    answered = messages[-1]["role"] == "assistant" and first_user < len(messages) - 1
    turns = messages[:-1] if answered else messages  # a row without a final answer keeps an empty output
    context = [m for k, m in enumerate(turns) if k != first_user]
    return Record(instruction=messages[first_user]["content"],
                  input="\n\n".join(f"{m['role']}: {m['content']}" for m in context),
                  output=messages[-1]["content"] if answered else "", lineage=source)


def read_records(path: Path, rows: list[tuple[int, object]] | None = None) -> list[Record]:
    """sprout records as they are; Alpaca rows and `messages` rows become records whose lineage says where they came
    from (`input`, FILE:LINE). `rows` are the file's rows when the caller has read them already (read_rows)."""
    _, rows = read_rows(path) if rows is None else (None, rows)
    records, problems = [], []
    for line, row in rows:
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            source = Lineage(generator="input", operation=f"{Path(path).name}:{line}")
            if "lineage" in row:
                records.append(Record.model_validate(row))
            elif "messages" in row and "instruction" not in row:
                records.append(_messages_record(row["messages"], source))
            else:
                alpaca = {k: row.get(k, "") for k in ("instruction", "input", "output")}
                if "instruction" not in row:
                    raise ValueError(f"no `instruction` or `messages` field (has: {sorted(row)})")
                if not isinstance(alpaca["instruction"], str) or not alpaca["instruction"].strip():
                    raise ValueError("instruction: not a string, or empty")
                # No task id: rows sharing an instruction are one task for the rules about tasks (max_instances,
                # conflicting outputs); near-duplicates are judged row by row (filters.dedup_on).
                records.append(Record(**alpaca, lineage=source))
        except ValidationError as exc:
            problems.append(f"{path}:{line}: {describe_errors(exc)}")
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
    if problems:
        raise UserError(f"{len(problems)} bad row(s) in {path}; nothing was written:", problems[:50])
    return records
