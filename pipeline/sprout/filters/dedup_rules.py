"""Dedup rules: stateful rules that compare a candidate with everything accepted before it (and the seeds).

Both learn what got in through `accepted`, and unlearn a record that is revoked after it got in (`forget`: e.g. a
pair past its label quota), so a revoked record never blocks a later candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sprout.core.records import Record
from sprout.filters.fast_rouge import FastRougeIndex
from sprout.filters.row_index import FIELDS, DedupOn, RowRougeIndex, row_texts
from sprout.filters.rules import Drop, Rule

# The report's histogram of each checked candidate's nearest score is exact from here up; below it, one bin. (Finding
# an exact maximum under ~0.3 means scoring every entry that shares a common word: a cost that grows with the pool.)
SCORE_FLOOR = 0.3


class RougeDedup(Rule):
    """Keep a record only if it is no near-duplicate of a seed or an accepted record.

    One field (the instruction by default, `field=` for another): ROUGE-L F of that field against every seed and
    accepted one is <= threshold — exactly rouge-score's decisions (see fast_rouge.py). Several fields (`dedup_on`
    "instruction+input" or "all"): a near-duplicate is above the threshold in EVERY field (row_index.py). With
    `track_scores` (one field), every checked candidate's nearest-neighbour score lands in `scores`, for the report
    (None for one below SCORE_FLOOR).

    A record is never compared with its own ancestors (`lineage.chain`: an evolved instruction keeps its parent's
    words by design; "no information gain" is the judge's call), only with everything else.
    """

    name = "rouge_l"
    stateful = True

    def __init__(self, threshold: float, mode: str = "rouge", track_scores: bool = False,
                 field: str = "instruction", name: str = "rouge_l", dedup_on: DedupOn | None = None):
        self.threshold, self.name = threshold, name
        self.fields = FIELDS[dedup_on] if dedup_on else (field,)
        self.field = field if len(self.fields) == 1 else None
        self.index = FastRougeIndex(mode) if self.field else None
        self.rows = None if self.field else RowRougeIndex(len(self.fields), mode)
        self.entries: dict[str, list[int]] = {}  # record id -> its entries (a seed or an accepted record)
        self._by_text: dict[tuple[str, ...], list[int]] = {}  # the texts of an entry -> the entries holding them
        self._holder: dict[int, str] = {}  # entry -> the record it holds (seeds added as plain texts have none)
        self._checked_upto: dict[int, int] = {}  # candidate (by object id) -> entries there were when checked
        self.scores: list[float | None] | None = [] if track_scores and self.field else None

    def seed(self, items: Iterable[Record | str]) -> None:
        """Start the pool: records (their ids name them, so their descendants can skip them) or plain texts.

        A record whose text is in the pool already (the task Self-Instruct grew, now a row Evol-Instruct evolves; a
        seed instruction) is named as that entry rather than added twice: its evolutions then skip the one entry
        that holds their ancestor's words."""
        for item in items:
            same = self._by_text.get(self._texts(item)) if isinstance(item, Record) else None
            entries = list(same) if same else [self._add(item)]
            if isinstance(item, Record):
                self.entries.setdefault(item.id, []).extend(entries)
                for entry in entries:
                    self._holder.setdefault(entry, item.id)

    def check(self, record: Record) -> Drop | None:
        hit = self._find(record)
        if hit is None:  # it passed everything there is now: a recheck needs only what gets in after
            self._checked_upto[id(record)] = self._pool.added
        else:  # (a stale mark of another object that had this id must not shorten a recheck)
            self._checked_upto.pop(id(record), None)
        if self.scores is not None:
            self.scores.append(hit[0] if hit else self.index.nearest(getattr(record, self.field), SCORE_FLOOR)[0])
        return self._drop(hit)

    def recheck(self, record: Record) -> Drop | None:
        """Against what got in since `check` (the batch's earlier survivors): it passed everything before that."""
        return self._drop(self._find(record, since=self._checked_upto.pop(id(record), 0)))  # scored once, in check()

    def accepted(self, record: Record) -> None:
        entry = self._add(record)
        self.entries.setdefault(record.id, []).append(entry)
        self._holder[entry] = record.id

    def forget(self, record: Record) -> None:
        entries = self.entries.get(record.id)
        if entries:
            entry = entries.pop()
            self._pool.remove(entry)
            self._holder.pop(entry, None)
            same = self._by_text.get(self._texts(record), [])
            if entry in same:
                same.remove(entry)

    @property
    def _pool(self) -> FastRougeIndex | RowRougeIndex:
        return self.index if self.index is not None else self.rows  # not `or`: an empty index is falsy

    def _texts(self, item: Record | str) -> tuple[str, ...]:
        if isinstance(item, str):
            return (item, *[""] * (len(self.fields) - 1))
        return (getattr(item, self.field),) if self.field else tuple(row_texts(item, self.fields))

    def _add(self, item: Record | str) -> int:
        texts = self._texts(item)
        entry = self.index.add(texts[0]) if self.index is not None else self.rows.add(texts)
        self._by_text.setdefault(texts, []).append(entry)
        return entry

    def _find(self, record: Record, since: int = 0) -> tuple[float, str, tuple[str, ...]] | None:
        """(score, what the reason says it matched, the matched texts by field), or None."""
        exclude = {e for i in record.lineage.chain or () for e in self.entries.get(i, ())}
        if self.index is not None:
            hit = self.index.exceeds(getattr(record, self.field), self.threshold, exclude, since)
            return None if hit is None else (hit[0], hit[1], (hit[1],))
        hit = self.rows.exceeds(row_texts(record, self.fields), self.threshold, exclude, since)
        if hit is None:
            return None
        scores, row = hit
        texts = self.rows.texts(row)
        return min(scores), self._describe(scores, texts), tuple(texts)

    def _neighbour(self, texts: tuple[str, ...]) -> dict:
        """The matched entry for the rejects file: its texts, and the record holding them (none for a seed's)."""
        record_id = next((self._holder[e] for e in self._by_text.get(texts, ()) if e in self._holder), None)
        return {"id": record_id, "fields": dict(zip(self.fields, texts, strict=True))}

    def _describe(self, scores: tuple[float, ...], texts: tuple[str, ...]) -> str:
        parts = [f"{f} {s:.3f}" for f, s in zip(self.fields, scores, strict=True)]
        return f"{', '.join(parts)} with {dict(zip(self.fields, texts, strict=True))!r}"

    def _drop(self, hit: tuple[float, str, tuple[str, ...]] | None) -> Drop | None:
        if not hit:
            return None
        neighbour = self._neighbour(hit[2])
        if self.field is None:  # several fields: the reason names each field's score and the matched row
            return Drop(f"near-duplicate row (ROUGE-L > {self.threshold} in every field: {hit[1]})", score=hit[0],
                        neighbour=neighbour)
        what = "ROUGE-L" if self.field == "instruction" else f"{self.field} ROUGE-L"
        return Drop(f"{what} {hit[0]:.3f} > {self.threshold} with {hit[1]!r}", score=hit[0], neighbour=neighbour)


class ExactDuplicate(Rule):
    """The same (instruction, input, output) as a record accepted earlier anywhere in the run."""

    name = "exact_duplicate"
    stateful = True

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str, str]] = Counter()

    def _key(self, record: Record) -> tuple[str, str, str]:
        return record.instruction.strip(), record.input.strip(), record.output.strip()

    def check(self, record: Record) -> str | None:
        return "exact duplicate of an accepted record" if self.seen[self._key(record)] else None

    def accepted(self, record: Record) -> None:
        self.seen[self._key(record)] += 1

    def forget(self, record: Record) -> None:
        self.seen[self._key(record)] -= 1
