"""Filter rules. A rule looks at one candidate and returns why it must go (a reason, or a `Drop` with a score), or
None to let it through. Group rules judge the candidates of one group together (e.g. one task's instances).

Every rule is small, configurable from `filters:` in the run config, and counted by the stage that runs it.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass

from sprout.core.records import Record
from sprout.core.stopwords import STOPWORDS
from sprout.filters.decontamination_index import DecontaminationIndex
from sprout.filters.rouge_scoring import rouge_l


@dataclass(frozen=True)
class Drop:
    """A drop with more than a reason: a score (e.g. ROUGE-L) and, for batch rules, the rule name it counts under."""

    reason: str
    score: float | None = None
    rule: str | None = None
    neighbour: dict | None = None  # what a near-duplicate matched: {"id": record id or None, "fields": {...}}


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

    def forget(self, record: Record) -> None:
        """Unlearn an accepted record that was revoked later (stateful rules)."""


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
    """An instruction that names the prompt's scaffold ("#Rewritten Prompt#", "given prompt", "add only 10 to 20
    words") copied the template. Compared lower-cased, without quotes, whitespace runs as one space."""

    name = "scaffold_copy"

    def __init__(self, phrases: list[str]):
        self.phrases: list[str] = []
        self.extend(phrases)

    def extend(self, phrases: list[str]) -> None:
        """More phrases (e.g. derived from the prompts of the generator whose records this rule checks)."""
        for phrase in map(scaffold_text, phrases):
            if phrase and phrase not in self.phrases:
                self.phrases.append(phrase)

    def check(self, record: Record) -> str | None:
        text = scaffold_text(record.instruction)
        hit = next((p for p in self.phrases if p in text), None)
        return f"mentions the scaffold {hit!r}" if hit else None


def scaffold_text(text: str) -> str:
    """Lower case, quotes gone, every run of whitespace one space: how scaffold phrases and instructions compare."""
    return " ".join(re.sub(r"[\"“”]", "", text).lower().split())


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


def conflicting_outputs(records: list[Record], threshold: float = 0.7, mode: str = "rouge") -> dict[int, str]:
    """Group rule: one input (of one task) with outputs that disagree is ambiguous, so every instance with that input
    goes. Outputs agree when they are near-duplicates (ROUGE-L F > threshold, as the dedup rules judge them; two
    blanks agree): "True" and "False" disagree, a one-word variant of the same answer does not (dedup keeps its
    first copy instead of losing both)."""
    outputs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in records:
        seen = outputs[record.instruction.strip(), record.input.strip()]
        if record.output.strip() not in seen:
            seen.append(record.output.strip())
    conflicts = {key: len(seen) for key, seen in outputs.items() if len(seen) > 1 and _disagree(seen, threshold, mode)}
    return {i: f"input has {conflicts[key]} different outputs" for i, r in enumerate(records)
            if (key := (r.instruction.strip(), r.input.strip())) in conflicts}


def _disagree(outputs: list[str], threshold: float, mode: str) -> bool:
    """Some two of these distinct outputs are not near-duplicates (the first pair found ends the search)."""
    for i, first in enumerate(outputs):
        for second in outputs[i + 1:]:
            if not first or not second or rouge_l(first, second, mode) <= threshold:
                return True
    return False


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
