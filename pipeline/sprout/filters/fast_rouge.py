"""Exact ROUGE-L near-duplicate index: the same keep/drop decisions as `rouge-score`, orders of magnitude faster.

`rouge.RougeIndex` scores a text against every accepted text with `rouge_scorer.RougeScorer(["rougeL"])`, against
the whole pool. This index gives bit-for-bit the same scores and decisions (same tokens, LCS and float formula: see
rouge_scoring.py), and is fast because almost no pair is scored.

A pair's LCS is at most its shared-token (multiset) overlap, and at most the shorter length; F(lcs) is monotone in
lcs for fixed lengths, in floats as in exact arithmetic (consecutive lcs values differ by a relative 1/lcs, far above
float rounding), so F(bound) <= threshold proves F(lcs) <= threshold and the pair is skipped. Candidates come from an
inverted index token -> entries, and only from the query's rarest tokens (prefix filtering): if a pair's overlap can
reach at most `hidden` without any of those tokens, and F(hidden) <= threshold, an entry that shares none of them
cannot exceed the threshold. Frequent tokens ("the", "a") are thus never looked up for a threshold query. Survivors
of the bound are scored in one rapidfuzz `cdist` call.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from sprout.filters.rouge_scoring import _char, _fmeasure, tokenize

__all__ = ["FastRougeIndex", "dedup_greedy"]

@lru_cache(maxsize=4096)
def _hidden(n: int, threshold: float) -> int:
    """The largest overlap h such that every pair with LCS <= h, whatever the other length m, scores <= threshold.

    For a fixed LCS h the score is highest when the other text is exactly the LCS (m = h: F = 2h/(h+n)); other
    lengths are lower by a relative 1/(h+n) or more, far above float rounding, so checking m = h is enough
    (tests check it against every m).
    """
    if threshold >= 1:
        return n  # no pair scores above 1.0
    h = min(n, int(threshold * n / (2 - threshold)) + 1)  # just above the exact solution of 2h/(h+n) = threshold
    while h > 0 and _fmeasure(h, h, n) > threshold:
        h -= 1
    return h


@dataclass
class Query:
    """A text's tokens as index ids, and the prefix (rarest tokens) that every entry above the threshold must share."""

    ids: list[int]
    counts: Counter[int]
    hidden: int  # overlap an entry can reach without a prefix token and still score <= threshold
    prefix: list[int]
    rest: int  # overlap reachable through the tokens left out of the prefix
    cost: int  # postings to read for the candidates: how selective this text is (less is more selective)

    @property
    def n(self) -> int:
        return len(self.ids)


class FastRougeIndex:
    """Texts accepted so far, queried for their highest ROUGE-L F against a new text (same contract as RougeIndex).

    Entries are numbered in the order they were added (`add` returns the number). An entry can be `remove`d (a
    record revoked after it got in) and a query can `exclude` entries (e.g. a record's own ancestors).
    """

    # chr() ends at U+10FFFF and skips the surrogates: past this many distinct tokens, sequences become id tuples.
    _CHAR_IDS = 0x110000 - 0x800

    def __init__(self, mode: str = "rouge") -> None:
        tokenize("", mode)  # validates the mode
        self.mode = mode
        self._vocab: dict[str, int] = {}
        self._postings: list[array] = [array("i")]  # token id -> entries holding it, ascending; id 0 = unseen token
        self._chars = [_char(0)]  # token id -> its code point in the strings rapidfuzz compares
        self._tuples = False
        self._texts: list[str] = []
        self._codes = np.empty(64, dtype=object)  # entry -> its id sequence, as rapidfuzz input
        self._lengths = np.zeros(64, dtype=np.int64)  # entry -> token count
        self._removed: set[int] = set()

    def __len__(self) -> int:
        return len(self._texts) - len(self._removed)

    @property
    def added(self) -> int:
        """Entries ever added (the next entry's number), removed ones included."""
        return len(self._texts)

    # -- building -------------------------------------------------------------------------------------------------

    def add(self, text: str) -> int:
        return self._add_tokens(text, tokenize(text, self.mode))

    def remove(self, entry: int) -> None:
        """Take an entry out of every later query (its postings stay; it is skipped where it turns up)."""
        self._removed.add(entry)

    def text(self, entry: int) -> str:
        return self._texts[entry]

    def _add_tokens(self, text: str, tokens: list[str]) -> int:
        vocab, postings = self._vocab, self._postings
        ids = []
        for tok in tokens:
            i = vocab.get(tok)
            if i is None:
                i = vocab[tok] = len(postings)
                postings.append(array("i"))
                self._chars.append(_char(i) if i < self._CHAR_IDS else "")
            ids.append(i)
        if len(postings) > self._CHAR_IDS and not self._tuples:
            self._tuples = True  # keeps every stored sequence in the same form, so equal ids stay equal to rapidfuzz
            for k in range(len(self._texts)):
                self._codes[k] = tuple(o if o < 0xD800 else o - 0x800 for o in map(ord, self._codes[k]))
        k = len(self._texts)
        if k == len(self._lengths):  # amortised doubling keeps the per-entry arrays numpy-indexable
            self._codes = np.concatenate([self._codes, np.empty(k, dtype=object)])
            self._lengths = np.concatenate([self._lengths, np.zeros(k, dtype=np.int64)])
        for i in set(ids):
            postings[i].append(k)
        self._texts.append(text)
        self._codes[k] = self._encode(ids)
        self._lengths[k] = len(ids)
        return k

    def _encode(self, ids: list[int]) -> str | tuple[int, ...]:
        if self._tuples:
            return tuple(ids)
        chars = self._chars
        return "".join([chars[i] for i in ids])

    # -- querying -------------------------------------------------------------------------------------------------

    def exceeds(self, text: str, threshold: float, exclude: Collection[int] = (), since: int = 0
                ) -> tuple[float, str] | None:
        """(highest score, its text) if some entry scores > threshold — earliest entry on ties — else None.
        Entries in `exclude`, and entries numbered below `since` (e.g. those a text was already checked against),
        are left out."""
        hit = self._search(tokenize(text, self.mode), threshold, exclude, since)
        return None if hit is None else (hit[0], self._texts[hit[1]])

    def exceeds_entry(self, text: str, threshold: float, exclude: Collection[int] = ()) -> tuple[float, int] | None:
        """As `exceeds`, with the entry's number instead of its text."""
        return self._search(tokenize(text, self.mode), threshold, exclude)

    def nearest(self, text: str, floor: float = 0.0, exclude: Collection[int] = ()) -> tuple[float | None, str | None]:
        """Exact highest score over all entries and the first entry reaching it; (0.0, None) if none shares a token.

        Branch and bound: a search above a threshold finds the true maximum whenever that maximum exceeds it, so try
        high thresholds (cheap, pruned hard) before falling back to scoring everything that shares a token. With a
        `floor` > 0 the search stops there: a maximum below the floor is (None, None). The last fallback reads the
        posting lists of the commonest words, every entry holding "the": a floor keeps a growing pool from making
        each query cost the whole pool. Entries in `exclude` are left out (e.g. the text's own entry).
        """
        tokens = tokenize(text, self.mode)
        thresholds = [t for t in (0.6, 0.45, 0.3, 0.15) if t > floor]
        for threshold in [*thresholds, math.nextafter(floor, 0.0) if floor > 0 else 0.0]:
            hit = self._search(tokens, threshold, exclude)
            if hit is not None:
                return hit[0], self._texts[hit[1]]
        return (None, None) if floor > 0 else (0.0, None)

    def query(self, tokens: list[str], threshold: float) -> Query | None:
        """The prefix a search needs, or None when no entry can score above `threshold` (no tokens, empty index, or
        too few of the text's tokens are in the index at all)."""
        if threshold < 0:
            raise ValueError("threshold must be >= 0 (every pair scores >= 0)")
        n = len(tokens)
        if not n or not self._texts:
            return None  # an empty text scores 0 against everything, as in rouge-score
        vocab, postings = self._vocab, self._postings
        ids = [vocab.get(tok, 0) for tok in tokens]  # unseen tokens -> 0, an id no entry holds
        counts = Counter(ids)
        counts.pop(0, None)
        hidden = _hidden(n, threshold)
        rest = sum(counts.values())  # overlap still reachable through tokens not (yet) looked up
        if rest <= hidden:
            return None
        prefix, cost = [], 0
        for i in sorted(counts, key=lambda i: len(postings[i])):  # rarest first: shortest posting lists
            if rest <= hidden:
                break
            prefix.append(i)
            rest -= counts[i]
            cost += len(postings[i]) * counts[i]
        return Query(ids, counts, hidden, prefix, rest, cost)

    def candidates(self, query: Query, threshold: float) -> np.ndarray:
        """Entries (ascending) whose LCS bound lets them score above `threshold`: a superset of those that do."""
        postings, counts, n = self._postings, query.counts, query.n
        # Every entry that can exceed the threshold holds a prefix token; count, per entry, the overlap through them
        # (a token the query holds c times goes in c times: the entry's share of it is at most c). b"".join copies,
        # so no buffer export outlives the call and the arrays can still grow.
        hits = np.frombuffer(b"".join([postings[i] for i in query.prefix for _ in range(counts[i])]), dtype=np.intc)
        cands, overlap = np.unique(hits, return_counts=True)
        lengths = self._lengths[cands]
        # Upper bound on LCS: prefix overlap + what the other tokens could add, and never more than either length.
        bound = np.minimum(np.minimum(overlap + query.rest, lengths), n)
        precision, recall = bound / n, bound / lengths
        cands = cands[2 * precision * recall / (precision + recall) > threshold]
        if self._removed and cands.size:
            cands = cands[~np.isin(cands, np.fromiter(self._removed, dtype=cands.dtype))]
        return cands

    def scores(self, query: Query, cands: np.ndarray) -> np.ndarray:
        """Exact ROUGE-L F of the query (rouge-score's prediction) against each entry (its target)."""
        if not cands.size:
            return np.zeros(0)
        # No score_cutoff: rapidfuzz 3.14.6 returns 0 for some pairs longer than 64 tokens whose LCS equals the
        # cut-off and the whole shorter sequence (one text inside the other), which would hide a pair right at the
        # threshold. The full bit-parallel LCS is no slower here (bench/dedup.py), and it is exact.
        lcs = process.cdist([self._encode(query.ids)], self._codes[cands], scorer=LCSseq.similarity,
                            dtype=np.int32)[0]
        precision, recall = lcs / query.n, lcs / np.maximum(self._lengths[cands], 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = 2 * precision * recall / (precision + recall)
        return np.where(lcs > 0, scores, 0.0)

    def _search(self, tokens: list[str], threshold: float, exclude: Collection[int] = (), since: int = 0
                ) -> tuple[float, int] | None:
        """(best score, first entry with it) among entries scoring > threshold, or None."""
        query = self.query(tokens, threshold)
        if query is None:
            return None
        cands = self.candidates(query, threshold)
        if since:
            cands = cands[cands >= since]
        if exclude and cands.size:
            cands = cands[~np.isin(cands, np.fromiter(exclude, dtype=cands.dtype))]
        if not cands.size:
            return None
        scores = self.scores(query, cands)
        best = int(np.argmax(scores))  # first maximum; cands ascend, so the earliest entry wins ties
        if not scores[best] > threshold:
            return None
        return float(scores[best]), int(cands[best])


def dedup_greedy(texts: list[str], threshold: float, mode: str = "rouge") -> list[int]:
    """Indices of the texts kept by greedy dedup in order: a text is kept if no earlier KEPT text scores > threshold."""
    index, kept = FastRougeIndex(mode), []
    for k, text in enumerate(texts):
        tokens = tokenize(text, mode)
        if index._search(tokens, threshold) is None:
            index._add_tokens(text, tokens)
            kept.append(k)
    return kept
