"""Near-duplicate rows: two rows are near-duplicates when EACH compared field is — ROUGE-L F above the threshold, an
empty field matching only an empty one — never ROUGE-L over the fields glued together.

Why per field: in a converted classification set every row shares one long instruction, so glued text scores high
whatever the short inputs say; in inverted FLAN rows (one template, no input) only the outputs differ. Comparing each
field keeps rows that differ in any field, and still drops a row with one word changed.

Exact, like FastRougeIndex: each field has its own index (entry k is row k in all of them). A query searches only its
most selective fields (cheapest first, by the posting lists their prefix tokens read: the input and the label of a
classification set, never the instruction every row shares), each of which yields a superset of the rows above the
threshold on that field; the candidates are their intersection, and every field is then scored exactly on them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

import numpy as np

from sprout.filters.fast_rouge import FastRougeIndex
from sprout.filters.rouge_scoring import tokenize

DedupOn = Literal["instruction", "instruction+input", "all"]
FIELDS: dict[str, tuple[str, ...]] = {"instruction": ("instruction",), "instruction+input": ("instruction", "input"),
                                      "all": ("instruction", "input", "output")}


class RowRougeIndex:
    """Rows kept so far (one text per compared field), queried for a kept row that is a near-duplicate in every
    field. Rows are numbered as they are added; a row can be removed or excluded from a query."""

    def __init__(self, n_fields: int, mode: str = "rouge") -> None:
        self.indexes = [FastRougeIndex(mode) for _ in range(n_fields)]
        self.mode = mode
        self._empty = [np.zeros(64, dtype=bool) for _ in range(n_fields)]  # row -> that field is blank
        self._rows = 0
        self._removed: set[int] = set()

    def __len__(self) -> int:
        return self._rows - len(self._removed)

    def add(self, texts: Sequence[str]) -> int:
        row = self._rows
        if row == len(self._empty[0]):  # amortised doubling, as in FastRougeIndex
            self._empty = [np.concatenate([e, np.zeros(row, dtype=bool)]) for e in self._empty]
        for index, empty, text in zip(self.indexes, self._empty, texts, strict=True):
            index.add(text)
            empty[row] = not text.strip()
        self._rows += 1
        return row

    def remove(self, row: int) -> None:
        self._removed.add(row)

    def texts(self, row: int) -> tuple[str, ...]:
        return tuple(index.text(row) for index in self.indexes)

    @property
    def added(self) -> int:
        return self._rows

    def exceeds(self, texts: Sequence[str], threshold: float, exclude: Collection[int] = (), since: int = 0
                ) -> tuple[tuple[float, ...], int] | None:
        """(per-field scores, row) for the kept row that is a near-duplicate in every field — the one whose lowest
        field score is highest, earliest on ties — or None. A blank field scores 1.0 against a blank one. Rows in
        `exclude` and rows numbered below `since` are left out."""
        if threshold < 0:
            raise ValueError("threshold must be >= 0 (every pair scores >= 0)")
        if not self._rows:
            return None
        blank = [not text.strip() for text in texts]
        queries = {}
        for f, text in enumerate(texts):
            if blank[f]:
                continue
            query = self.indexes[f].query(tokenize(text, self.mode), threshold)
            if query is None:  # no kept row can score above the threshold on this field
                return None
            queries[f] = query
        cands = self._candidates(queries, threshold) if queries else np.arange(self._rows)  # all blank: any row
        if since:
            cands = cands[cands >= since]
        for f, is_blank in enumerate(blank):
            if cands.size:
                cands = cands[self._empty[f][cands] == is_blank]
        dropped = self._removed | set(exclude)
        if dropped and cands.size:
            cands = cands[~np.isin(cands, np.fromiter(dropped, dtype=cands.dtype))]
        scores = np.ones((len(texts), cands.size))
        for f, query in queries.items():
            if not cands.size:
                return None
            field_scores = self.indexes[f].scores(query, cands)
            above = field_scores > threshold
            cands, scores = cands[above], scores[:, above]
            scores[f] = field_scores[above]
        if not cands.size:
            return None
        best = int(np.argmax(scores.min(axis=0)))  # first maximum; cands ascend, so the earliest row wins ties
        return tuple(float(s) for s in scores[:, best]), int(cands[best])


    def _candidates(self, queries: dict, threshold: float) -> np.ndarray:
        """Rows that may be above the threshold in every queried field. Each field's prefix candidates are a
        superset of its rows above the threshold, so any intersection of them is a superset of the answer: fields
        are taken cheapest first (postings to read), and a field whose postings cost more than scoring the
        candidates left is not read but only scored later (the instruction every row of a classification set
        shares; a one-word label that matches a quarter of the rows is cheap to read but selects little alone)."""
        order = sorted(queries, key=lambda f: queries[f].cost)
        cands = self.indexes[order[0]].candidates(queries[order[0]], threshold)
        for f in order[1:]:
            if not cands.size or queries[f].cost > SCORE_COST * cands.size:
                break
            cands = np.intersect1d(cands, self.indexes[f].candidates(queries[f], threshold), assume_unique=True)
        return cands


# A posting read costs far less than an exact LCS; past this many reads per candidate left, scoring wins.
SCORE_COST = 8


def row_texts(row: object, fields: Sequence[str]) -> tuple[str, ...]:
    """The compared fields of a record (attributes) or a dict row (keys; a missing or non-string field is blank)."""
    if isinstance(row, dict):
        return tuple(value if isinstance(value := row.get(f), str) else "" for f in fields)
    return tuple(getattr(row, f) for f in fields)
