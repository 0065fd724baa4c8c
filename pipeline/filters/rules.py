"""Filter rules. A rule looks at one candidate and returns why it must go, or None to let it through.

Task rules judge a new instruction (Self-Instruct's keep conditions); instance rules judge one (input, output)
pair; group rules judge the instances of one task together (e.g. one input with two different outputs).
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict

from sprout.filters.rouge import RougeIndex
from sprout.records import Record


class Rule:
    """A per-record rule. `accepted` lets stateful rules (dedup) learn what got in."""

    name = "rule"

    def check(self, record: Record) -> str | None:
        raise NotImplementedError

    def accepted(self, record: Record) -> None:
        pass


class WordCount(Rule):
    name = "word_count"

    def __init__(self, min_words: int, max_words: int):
        self.min_words, self.max_words = min_words, max_words

    def check(self, record: Record) -> str | None:
        words = len(record.instruction.split())
        if words < self.min_words:
            return f"{words} words; needs at least {self.min_words}"
        if words > self.max_words:
            return f"{words} words; allows at most {self.max_words}"
        return None


class Blacklist(Rule):
    """Words that mark tasks a text-only model cannot do (images, files, maps...)."""

    name = "blacklist"

    def __init__(self, words: list[str]):
        self.pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)

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


class RougeDedup(Rule):
    """Keep an instruction only if its ROUGE-L F against every seed and accepted instruction is <= threshold."""

    name = "rouge_l"

    def __init__(self, threshold: float, index: RougeIndex | None = None):
        self.threshold = threshold
        self.index = index or RougeIndex()

    def check(self, record: Record) -> str | None:
        score, match = self.index.nearest(record.instruction)
        if score > self.threshold:
            return f"ROUGE-L {score:.3f} > {self.threshold} with {match!r}"
        return None

    def accepted(self, record: Record) -> None:
        self.index.add(record.instruction)


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
        alternatives = "|".join(re.escape(m.rstrip(":")) for m in markers)
        self.pattern = re.compile(rf"(?:^|\n|\s)\**(?:{alternatives})\s*:", re.IGNORECASE)

    def check(self, record: Record) -> str | None:
        for field in ("input", "output"):
            found = self.pattern.search(getattr(record, field))
            if found:
                return f"{field} contains the scaffold marker {found.group(0).strip()!r}"
        return None


def conflicting_outputs(records: list[Record]) -> dict[int, str]:
    """Group rule: one input with different outputs is ambiguous, so every instance with that input goes."""
    outputs: dict[str, set[str]] = defaultdict(set)
    for record in records:
        outputs[record.input.strip()].add(record.output.strip())
    return {i: f"input has {len(outputs[r.input.strip()])} different outputs"
            for i, r in enumerate(records) if len(outputs[r.input.strip()]) > 1}


def duplicate_instances(records: list[Record]) -> dict[int, str]:
    """Group rule: an exact repeat of an earlier (input, output) pair of the same task adds nothing."""
    seen: Counter[tuple[str, str]] = Counter()
    dropped = {}
    for i, record in enumerate(records):
        key = (record.input.strip(), record.output.strip())
        if seen[key]:
            dropped[i] = "exact duplicate of an earlier instance"
        seen[key] += 1
    return dropped


GROUP_RULES = {"conflicting_outputs": conflicting_outputs, "duplicate_instance": duplicate_instances}
