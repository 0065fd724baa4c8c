"""Decontamination: drop training rows that share a long n-gram with an evaluation set (`sprout decontaminate`, and
the `decontamination` filter rule). This module is the index and the check of a row; eval_files.py reads the eval
files into an index.

Text is normalised before it is compared, so case, punctuation and spacing cannot hide an overlap: NFKC, casefold,
then Unicode word tokens (letters and digits with their combining marks; punctuation, whitespace and `_` only
separate). CJK ideographs and kana are one token each, as BERT's basic tokenizer does, since those scripts put no
spaces between words. A row's field is contaminated when one of its n-grams (13 tokens by default, the size GPT-3
and LLaMA used) is an n-gram of an eval text.

Index: every n-gram of every eval text is hashed once (Python's 64-bit tuple hash) into one dict, hash -> the first
eval text holding it. Checking a field hashes its n-grams and asks the dict: O(tokens), whatever the number of eval
items, not O(rows x items). A hash hit is verified token by token against the eval text before anything is
dropped, so a hash collision can never drop a row.

Eval texts shorter than n tokens: a text of at least `min_tokens` tokens (8 by default: GPT-3's floor on its n, below
which it found spurious collisions) is indexed whole, and a row matches it when it holds the whole text as
consecutive tokens. A shorter one ("Paris", "True", "A. 42") is skipped and counted in the report: a few common
words in a row are no evidence that it was copied from the eval set.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

RULE = "decontamination"
DEFAULT_N = 13
DEFAULT_MIN_TOKENS = 8
DEFAULT_FIELDS = ("instruction", "input")

_ASCII_WORD = re.compile(r"[^\W_]+")
# Han ideographs (with extensions and compatibility forms), hiragana and katakana: one token per character.
_CJK = re.compile("([\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])")


@functools.cache
def _unicode_word() -> re.Pattern:
    """Word characters plus combining marks (`\\w` alone splits Devanagari, Thai... words at their vowel signs)."""
    ranges, start = [], None
    for code in range(0x110000 + 1):
        is_mark = code < 0x110000 and unicodedata.category(chr(code))[0] == "M"
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
            start = None
    return re.compile(rf"[\w{''.join(ranges)}]+")


def tokens(text: str) -> list[str]:
    """The normalised word tokens of `text`: what n-grams are made of."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    text = _CJK.sub(r" \1 ", unicodedata.normalize("NFKC", text).casefold().replace("_", " "))
    return _unicode_word().findall(text)


def _hashes(toks: list[str], n: int) -> Iterator[int]:
    """The hash of each n-gram of `toks`, in order (none when there are fewer than n tokens)."""
    return map(hash, zip(*[toks[i:] for i in range(n)], strict=False))


@dataclass(frozen=True)
class EvalText:
    """One indexed text of an eval item: where it is (file, line, field inside the item) and what it says."""

    file: str
    line: int
    field: str  # "question", "messages[1].content"; "" for a .txt line or a row that is one string
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        return f"{self.where} ({self.field})" if self.field else self.where


@dataclass(frozen=True)
class Match:
    """Why a field is contaminated: the shared tokens, the eval text they come from, and how much is shared."""

    field: str
    ngram: str  # the shared tokens, normalised, joined by spaces
    size: int  # tokens in the match: n, or a short eval text's length
    eval: EvalText
    whole: bool  # a short eval text matched as a whole
    shared: int  # how many of the field's n-grams are in the index (1 for a whole-text match)
    total: int  # how many n-grams the field has

    def reason(self) -> str:
        if self.whole:
            return (f"whole eval text of {self.size} tokens {self.ngram!r} in {self.field} matches "
                    f"{self.eval.describe()}")
        return (f"{self.size}-gram {self.ngram!r} in {self.field} matches {self.eval.describe()}; {self.shared} of "
                f"the {self.field}'s {self.total} {self.size}-grams are in the eval set")

    def to_dict(self) -> dict:
        return {"field": self.field, "ngram": self.ngram, "tokens": self.size, "whole_eval_text": self.whole,
                "shared_ngrams": self.shared, "ngrams": self.total,
                "eval": {"file": self.eval.file, "line": self.eval.line, "field": self.eval.field}}


@dataclass
class EvalFileStats:
    file: str
    items: int = 0  # rows of the file
    texts: int = 0  # string values indexed or looked at
    indexed: int = 0  # texts of at least n tokens: all their n-grams are in the index
    whole: int = 0  # texts of min_tokens..n-1 tokens, indexed whole
    skipped_short: int = 0  # texts under min_tokens tokens: not indexed
    ngrams: int = 0  # distinct n-grams (and whole short texts) this file added to the index

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class DecontaminationIndex:
    """Every n-gram of the eval texts, hashed; built once, then read-only (safe to share between stages)."""

    def __init__(self, n: int = DEFAULT_N, min_tokens: int = DEFAULT_MIN_TOKENS):
        if n < 1 or min_tokens < 1:
            raise ValueError("n and min_tokens must be at least 1")
        self.n, self.min_tokens = n, min(min_tokens, n)
        self.texts: list[EvalText] = []
        self.grams: dict[int, int] = {}  # hash of an n-gram -> index in `texts` of the first text holding it
        self.short: dict[int, list[int]] = {}  # hash of a short text's first min_tokens tokens -> its `texts` indices
        self._tokens_cache: dict[int, list[str]] = {}

    def add(self, text: EvalText, stats: EvalFileStats | None = None) -> None:
        toks = tokens(text.text)
        stats = stats or EvalFileStats(text.file)
        stats.texts += 1
        if len(toks) < self.min_tokens:
            stats.skipped_short += 1
            return
        number = len(self.texts)
        self.texts.append(text)
        if len(toks) >= self.n:
            stats.indexed += 1
            before = len(self.grams)
            setdefault = self.grams.setdefault
            for value in _hashes(toks, self.n):
                setdefault(value, number)
            stats.ngrams += len(self.grams) - before
        else:  # keyed by its first min_tokens tokens: one lookup pass finds every short text, whatever its length
            stats.whole += 1
            same = self.short.setdefault(hash(tuple(toks[:self.min_tokens])), [])
            if not any(self._eval_tokens(k) == toks for k in same):
                same.append(number)
                stats.ngrams += 1

    def __len__(self) -> int:
        return len(self.grams) + sum(len(same) for same in self.short.values())

    def _eval_tokens(self, number: int) -> list[str]:
        if number not in self._tokens_cache:
            if len(self._tokens_cache) > 4096:
                self._tokens_cache.clear()
            self._tokens_cache[number] = tokens(self.texts[number].text)
        return self._tokens_cache[number]

    def _holds(self, number: int, gram: list[str]) -> bool:
        """The eval text really holds `gram` (a hash hit is only a candidate)."""
        toks = self._eval_tokens(number)
        size = len(gram)
        return any(toks[i:i + size] == gram for i in range(len(toks) - size + 1) if toks[i] == gram[0])

    def find(self, text: str, field: str = "text") -> Match | None:
        """The first overlap of `text` with the eval texts: an n-gram, else a whole short eval text."""
        if not text:
            return None
        toks = tokens(text)
        n, grams = self.n, self.grams
        if len(toks) >= n and not grams.keys().isdisjoint(_hashes(toks, n)):
            hits = [(pos, grams.get(value)) for pos, value in enumerate(_hashes(toks, n))]
            shared = sum(number is not None for _, number in hits)
            for pos, number in hits:
                if number is not None and self._holds(number, toks[pos:pos + n]):
                    return Match(field, " ".join(toks[pos:pos + n]), n, self.texts[number], False, shared,
                                 len(toks) - n + 1)
        m, short = self.min_tokens, self.short
        if short and len(toks) >= m and not short.keys().isdisjoint(_hashes(toks, m)):
            for pos, value in enumerate(_hashes(toks, m)):
                for number in short.get(value, ()):
                    whole = self._eval_tokens(number)
                    if toks[pos:pos + len(whole)] == whole:
                        return Match(field, " ".join(whole), len(whole), self.texts[number], True, 1, 1)
        return None


def strings_in(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) for every string inside a JSON value, nested ones too: `messages[1].content`."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from strings_in(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from strings_in(inner, f"{path}[{i}]")


def find_in_row(index: DecontaminationIndex, row: object, fields: tuple[str, ...]) -> Match | None:
    """The first overlap in a row's checked fields (in the order given); a text row is checked whole."""
    if isinstance(row, str):
        return index.find(row, "text")
    for name in fields:
        for path, text in strings_in(row.get(name), name):
            match = index.find(text, path)
            if match:
                return match
    return None


def row_problem(row: object, fields: tuple[str, ...]) -> str | None:
    if not isinstance(row, dict):
        return f"expected a JSON object with {' / '.join(fields)}, got a JSON {type(row).__name__}"
    present = [name for name in fields if name in row]
    if not present:
        return f"no field {' or '.join(repr(f) for f in fields)} (has: {sorted(row)}); pick the fields with --field"
    bad = next((name for name in present if not isinstance(row[name], str | list | dict | None)), None)
    return f"field {bad!r} holds a {type(row[bad]).__name__}, not text" if bad else None


@dataclass
class ScanResult:
    kept: list[object] = field(default_factory=list)
    dropped: list[tuple[int, object, Match]] = field(default_factory=list)  # (line, row, match)


def scan(index: DecontaminationIndex, rows: list[tuple[int, object]], fields: tuple[str, ...]) -> ScanResult:
    result = ScanResult()
    for line, row in rows:
        match = find_in_row(index, row, fields)
        if match:
            result.dropped.append((line, row, match))
        else:
            result.kept.append(row)
    return result
