"""The eval files a run decontaminates against, read into one n-gram index (decontamination_index.py).

An eval file is .jsonl, .json (an array) or .txt (one item a line). Every string of an item is an eval text, nested
ones too (`messages[1].content`), or only those under one field (`--eval-field`, `decontamination_eval_field`).
Every bad row is reported at once, with file:line, before any index is built. The index is kept while the files are
unchanged, so the filter stages of one run share it instead of each reading the eval set again.
"""

from __future__ import annotations

import os
from pathlib import Path

from sprout.core.errors import UserError
from sprout.filters.decontamination_index import (
    DEFAULT_MIN_TOKENS,
    DEFAULT_N,
    DecontaminationIndex,
    EvalFileStats,
    EvalText,
    strings_in,
)
from sprout.io.dataset_io import read_rows


def eval_texts(path: Path, eval_field: str | None = None) -> tuple[int, list[EvalText]]:
    """(items, texts) of one eval file: .jsonl, .json array or .txt (a line an item). Every string of an item is a
    text (nested ones too), or only those under `eval_field`. One UserError for every bad row, with file:line."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise UserError(f"{path}: {what}; an eval file must be a .jsonl, .json (array) or .txt (one item a line) "
                        "file. Fix: check the path given to --against / decontaminate_against.")
    fmt, rows = read_rows(path)
    if not rows:
        raise UserError(f"{path}: the eval file holds no items. Fix: pass the file with the evaluation items.")
    texts, problems = [], []
    for line, row in rows:
        if fmt == "txt" or eval_field is None:
            found = list(strings_in(row))
        elif isinstance(row, dict) and eval_field in row:
            found = list(strings_in(row[eval_field], eval_field))
            if not found:
                problems.append(f"{path}:{line}: field {eval_field!r} holds no text ({type(row[eval_field]).__name__})")
        else:
            has = sorted(row) if isinstance(row, dict) else f"a JSON {type(row).__name__}, not an object"
            problems.append(f"{path}:{line}: no field {eval_field!r} (has: {has})")
            found = []
        texts += [EvalText(str(path), line, name, text) for name, text in found if text.strip()]
    if problems:
        raise UserError(f"{len(problems)} eval item(s) in {path} without {eval_field!r}; nothing was written. Fix: "
                        "pick the field with --eval-field (decontamination_eval_field), or leave it out to index "
                        "every string of an item:", problems[:50])
    if not texts:
        raise UserError(f"{path}: no text in any eval item (only numbers, booleans or nulls). Fix: pass the eval "
                        "file with the items' text.")
    return len(rows), texts


def build_index(paths: list[Path], n: int = DEFAULT_N, min_tokens: int = DEFAULT_MIN_TOKENS,
                eval_field: str | None = None) -> tuple[DecontaminationIndex, list[EvalFileStats]]:
    """The index over every text of every eval file, and per-file counts of what was indexed and skipped."""
    if not paths:
        raise UserError("no eval file to decontaminate against. Fix: pass --against EVAL (repeat it for more).")
    index, stats = DecontaminationIndex(n, min_tokens), []
    for path in paths:
        items, texts = eval_texts(path, eval_field)
        file_stats = EvalFileStats(str(path), items=items)
        for text in texts:
            index.add(text, file_stats)
        stats.append(file_stats)
    return index, stats


_INDEX_CACHE: dict[tuple, tuple[DecontaminationIndex, list[EvalFileStats]]] = {}


def cached_index(paths: list[Path], n: int, min_tokens: int, eval_field: str | None
                 ) -> tuple[DecontaminationIndex, list[EvalFileStats]]:
    """build_index, reused while the eval files are unchanged: the filter stages of one run share one index."""
    try:
        files = tuple((str(Path(p).resolve()), os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths)
    except OSError:
        return build_index(paths, n, min_tokens, eval_field)  # reports the bad path
    key = (files, n, min_tokens, eval_field)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE.clear()  # one index at a time: they can be large
        _INDEX_CACHE[key] = build_index(paths, n, min_tokens, eval_field)
    return _INDEX_CACHE[key]
