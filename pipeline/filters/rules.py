"""Filter rules. A rule looks at one candidate and returns why it must go (a reason, or a `Drop` with a score), or
None to let it through. Group rules judge the candidates of one group together (e.g. one task's instances).

Every rule is small, configurable from `filters:` in the run config, and counted by the stage that runs it.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from sprout.decontaminate import DecontaminationIndex
from sprout.filters.fast_rouge import FastRougeIndex
from sprout.records import Record

STOPWORDS = frozenset(
    word for line in (Path(__file__).resolve().parent.parent / "data" / "stopwords_en.txt").read_text().splitlines()
    if not line.startswith("#") for word in line.split())


@dataclass(frozen=True)
class Drop:
    """A drop with more than a reason: a score (e.g. ROUGE-L) and, for batch rules, the rule name it counts under."""

    reason: str
    score: float | None = None
    rule: str | None = None


class Rule:
    """A per-record rule. `stateful` rules learn what got in through `accepted` (dedup)."""

    name = "rule"
    stateful = False

    def check(self, record: Record) -> str | Drop | None:
        raise NotImplementedError

    def accepted(self, record: Record) -> None:
        pass

    def recheck(self, record: Record) -> str | Drop | None:
        """Check again, for a candidate a batch rule (judge) kept; stateful rules may see new acceptances."""
        return self.check(record)


class WordCount(Rule):
    def __init__(self, field: str, min_words: int, max_words: int, name: str):
        self.field, self.min_words, self.max_words, self.name = field, min_words, max_words, name

    def check(self, record: Record) -> str | None:
        words = len(getattr(record, self.field).split())
        if words < self.min_words:
            return f"{self.field} has {words} words; needs at least {self.min_words}"
        if words > self.max_words:
            return f"{self.field} has {words} words; allows at most {self.max_words}"
        return None


class Blacklist(Rule):
    """Words that mark tasks a text-only model cannot do (images, files, maps...); whole words, any case."""

    name = "blacklist"

    def __init__(self, words: list[str]):
        alternatives = "|".join(re.escape(w) for w in words) or r"(?!)"  # an empty list matches nothing
        self.pattern = re.compile(rf"\b({alternatives})\b", re.IGNORECASE)

    def check(self, record: Record) -> str | None:
        found = self.pattern.search(record.instruction)
        return f"contains {found.group(0).lower()!r}" if found else None


class BannedPrefix(Rule):
    name = "banned_prefix"

    def __init__(self, prefixes: list[str]):
        self.prefixes = [p.lower() for p in prefixes]

    def check(self, record: Record) -> str | None:
        text = record.instruction.lower()
        hit = next((p for p in self.prefixes if text.startswith(p)), None)
        return f"starts with {hit!r}" if hit else None


class LeadingCharacter(Rule):
    name = "leading_char"

    def check(self, record: Record) -> str | None:
        first = record.instruction[:1]
        if not first:
            return "empty instruction"
        if first in string.punctuation:
            return f"starts with punctuation {first!r}"
        if not first.isascii():
            return f"starts with non-ASCII {first!r}"
        return None


class ScaffoldCopy(Rule):
    """An instruction that names the prompt's scaffold ("#Rewritten Prompt#", "given prompt") copied the template."""

    name = "scaffold_copy"

    def __init__(self, phrases: list[str]):
        self.phrases = [p.lower() for p in phrases]

    def check(self, record: Record) -> str | None:
        text = record.instruction.lower()
        hit = next((p for p in self.phrases if p in text), None)
        return f"mentions the scaffold {hit!r}" if hit else None


class RougeDedup(Rule):
    """Keep a record only if the ROUGE-L F of its `field` (the instruction by default) against every seed and
    accepted one is <= threshold.

    Exact: the same decisions as `rouge-score` (see fast_rouge.py). With `track_scores`, every checked candidate's
    nearest-neighbour score also lands in `scores`, for the report's histogram.
    """

    name = "rouge_l"
    stateful = True

    def __init__(self, threshold: float, mode: str = "rouge", track_scores: bool = False,
                 field: str = "instruction", name: str = "rouge_l"):
        self.threshold, self.field, self.name = threshold, field, name
        self.index = FastRougeIndex(mode)
        self.scores: list[float] | None = [] if track_scores else None

    def check(self, record: Record) -> Drop | None:
        text = getattr(record, self.field)
        hit = self.index.exceeds(text, self.threshold)
        if self.scores is not None:
            self.scores.append(hit[0] if hit else self.index.nearest(text)[0])
        return self._drop(hit)

    def recheck(self, record: Record) -> Drop | None:
        return self._drop(self.index.exceeds(getattr(record, self.field), self.threshold))  # scored once, in check()

    def _drop(self, hit: tuple[float, str] | None) -> Drop | None:
        if hit:
            what = "ROUGE-L" if self.field == "instruction" else f"{self.field} ROUGE-L"
            return Drop(f"{what} {hit[0]:.3f} > {self.threshold} with {hit[1]!r}", score=hit[0])
        return None

    def accepted(self, record: Record) -> None:
        self.index.add(getattr(record, self.field))


class ExactDuplicate(Rule):
    """The same (instruction, input, output) as a record accepted earlier anywhere in the run."""

    name = "exact_duplicate"
    stateful = True

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()

    def _key(self, record: Record) -> tuple[str, str, str]:
        return record.instruction.strip(), record.input.strip(), record.output.strip()

    def check(self, record: Record) -> str | None:
        return "exact duplicate of an accepted record" if self._key(record) in self.seen else None

    def accepted(self, record: Record) -> None:
        self.seen.add(self._key(record))


class EmptyOutput(Rule):
    name = "empty_output"

    def check(self, record: Record) -> str | None:
        return "output is empty" if not record.output.strip() else None


class InputEqualsOutput(Rule):
    name = "input_equals_output"

    def check(self, record: Record) -> str | None:
        same = record.input.strip() and record.input.strip() == record.output.strip()
        return "input and output are the same" if same else None


class TrailingColon(Rule):
    """A field ending in ':' is a list the model never finished."""

    name = "trailing_colon"

    def check(self, record: Record) -> str | None:
        for field in ("instruction", "input", "output"):
            if getattr(record, field).rstrip().endswith(":"):
                return f"{field} ends with ':'"
        return None


class FormatLeak(Rule):
    """A scaffold marker (`Output:`, `Class label:`...) inside a field means the reply broke the example format:
    two examples ran together, or the model echoed the template. Such a field is not clean data."""

    name = "format_leak"

    def __init__(self, markers: list[str]):
        alternatives = "|".join(re.escape(m.rstrip(":")) for m in markers) or r"(?!)"
        self.pattern = re.compile(rf"(?:^|\n|\s)\**(?:{alternatives})\s*:", re.IGNORECASE)

    def check(self, record: Record) -> str | None:
        for field in ("input", "output"):
            found = self.pattern.search(getattr(record, field))
            if found:
                return f"{field} contains the scaffold marker {found.group(0).strip()!r}"
        return None


class Refusal(Rule):
    """A short reply with a refusal phrase ("sorry", "as an AI"...) is a refusal, not an answer. Long replies that
    merely contain "sorry" are kept (Evol-Instruct's rule: refusal phrase and fewer than 80 words)."""

    name = "refusal"

    def __init__(self, phrases: list[str], max_words: int):
        self.pattern = re.compile("|".join(rf"\b{re.escape(p)}" for p in phrases) or r"(?!)", re.IGNORECASE)
        self.max_words = max_words

    def check(self, record: Record) -> str | None:
        found = self.pattern.search(record.output)
        words = len(record.output.split())
        if found and words < self.max_words:
            return f"refusal phrase {found.group(0).lower()!r} in a {words}-word output"
        return None


class PunctStopwordsOnly(Rule):
    """An output of nothing but punctuation and function words ("Yes.", "It is the one.") carries no content.
    Classification labels are exempt: a label may well be a stop word ("yes", "no")."""

    name = "punct_stopwords_only"

    def check(self, record: Record) -> str | None:
        if record.kind == "classification":
            return None
        words = re.findall(r"[^\W_]+", record.output.lower())
        if all(word in STOPWORDS for word in words):
            return "output is only punctuation and stop words"
        return None


class Decontamination(Rule):
    """A record whose checked fields (instruction and input by default) share an n-gram (13 tokens by default) with
    an item of the eval files, after normalisation (case, punctuation, spacing): training on it would leak the eval
    set. The index over the eval files is built once and shared; each check costs O(tokens of the record)."""

    name = "decontamination"

    def __init__(self, index: DecontaminationIndex, fields: list[str] | tuple[str, ...] = ("instruction", "input")):
        self.eval_index, self.fields = index, tuple(fields)

    def check(self, record: Record) -> Drop | None:
        for field in self.fields:
            match = self.eval_index.find(getattr(record, field), field)
            if match:
                return Drop(match.reason())
        return None


def conflicting_outputs(records: list[Record]) -> dict[int, str]:
    """Group rule: one input with different outputs is ambiguous, so every instance with that input goes."""
    outputs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        outputs[record.instruction.strip(), record.input.strip()].add(record.output.strip())
    return {i: f"input has {len(outputs[r.instruction.strip(), r.input.strip()])} different outputs"
            for i, r in enumerate(records) if len(outputs[r.instruction.strip(), r.input.strip()]) > 1}


def duplicate_instances(records: list[Record]) -> dict[int, str]:
    """Group rule: an exact repeat of an earlier (input, output) pair of the same task adds nothing."""
    seen: Counter[tuple[str, str, str]] = Counter()
    dropped = {}
    for i, record in enumerate(records):
        key = (record.instruction.strip(), record.input.strip(), record.output.strip())
        if seen[key]:
            dropped[i] = "exact duplicate of an earlier instance"
        seen[key] += 1
    return dropped


def max_instances(limit: int):
    """Group rule: at most `limit` instances per task (the first ones are kept)."""

    def check(records: list[Record]) -> dict[int, str]:
        per_task: Counter[str] = Counter()
        dropped = {}
        for i, record in enumerate(records):
            task = record.lineage.task_id or record.instruction
            per_task[task] += 1
            if per_task[task] > limit:
                dropped[i] = f"task already has {limit} instances"
        return dropped

    return check
