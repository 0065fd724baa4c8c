"""What `sprout mix` draws from: source rows checked by the trainer's own reader, and plain text cut into chunks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sprout.core.records import Record
from sprout.core.seeds import describe_errors, read_text
from sprout.datasets.chat_rows import to_messages
from sprout.datasets.mix_config import PretrainingConfig, SourceConfig
from sprout.io.dataset_io import read_rows


def _kind(row: dict) -> str:
    """The form the trainer reads the row in (its order: messages, then instruction, then text)."""
    if "messages" in row:
        return "messages"
    if "instruction" in row:
        return "sprout" if "lineage" in row else "alpaca"
    return "text"


def _check_row(row: object, fmt: str) -> str:
    """The row's kind; ValueError when the trainer would refuse it or it is not the source's declared format."""
    to_messages(row)  # the trainer's own reader: whatever passes here trains
    kind = _kind(row)
    if fmt == "sprout":
        Record.model_validate({k: v for k, v in row.items() if k != "mix"})
    elif fmt != "auto" and kind != fmt and not (fmt == "alpaca" and kind == "sprout"):
        raise ValueError(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} row, but the source says `format: {fmt}`")
    return kind


def _matches(row: dict, where: dict[str, list]) -> bool:
    for key, allowed in where.items():
        value: object = row
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value not in allowed:
            return False
    return True


@dataclass
class Source:
    name: str
    path: Path
    rows: list[tuple[int, dict]]  # (line in the file, row), after `where`
    read: int = 0  # rows in the file
    kinds: dict[str, int] = field(default_factory=dict)
    sha256: str = ""


def read_source(name: str, cfg: SourceConfig, problems: list[str]) -> Source:
    _, rows = read_rows(cfg.path)
    source = Source(name, cfg.path, [], len(rows), sha256=hashlib.sha256(cfg.path.read_bytes()).hexdigest())
    for line, row in rows:
        try:
            kind = _check_row(row, cfg.format)
        except ValidationError as exc:
            problems.append(f"{cfg.path}:{line}: not a sprout record: {describe_errors(exc)}")
            continue
        except ValueError as exc:
            problems.append(f"{cfg.path}:{line}: {exc}")
            continue
        if _matches(row, cfg.where):
            source.rows.append((line, row))
            source.kinds[kind] = source.kinds.get(kind, 0) + 1
    return source


def chunks(cfg: PretrainingConfig) -> list[tuple[int, str]]:
    """(first line, text): paragraphs (blocks between blank lines, inner line breaks kept), or runs of `words` words
    (whitespace made single spaces; the last run may be shorter). Chunks under `min_words` words are not used."""
    lines = read_text(cfg.path, "pretraining text file", "Check `pretraining.path`.").splitlines()
    texts: list[tuple[int, str]] = []
    if cfg.chunk == "paragraphs":
        start, block = 0, []
        for n, line in enumerate([*lines, ""], 1):  # the blank line added at the end closes the last paragraph
            if line.strip():
                start = start if block else n
                block.append(line.rstrip())
            elif block:
                texts.append((start, "\n".join(block).strip()))
                block = []
    else:
        words = [(n, w) for n, line in enumerate(lines, 1) for w in line.split()]
        texts = [(words[i][0], " ".join(w for _, w in words[i:i + cfg.words])) for i in range(0, len(words), cfg.words)]
    return [(n, text) for n, text in texts if len(text.split()) >= cfg.min_words]
