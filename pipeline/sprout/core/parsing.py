"""Parsers for model replies, all in one place. They return what they could read plus, when nothing usable came
back, a reason (or None, which the caller counts as its own reject).

Small models drift from the format; the parsers accept the common drifts (extra spaces, `1)` for `1.`, Markdown
bold, wrapping quotes, trailing chatter) and leave everything else to the filter rules, which count what they drop.
Every parser here is a pure function of the reply's text. Users: Self-Instruct (numbered lists, instance pairs,
yes/no), pair synthesis (an input, a label), Evol-Instruct (a rewrite), `templates grow` (a reworded template) and
the LLM-judge rule (a verdict).
"""

from __future__ import annotations

import re

NUMBERED_ITEM = re.compile(r"^\s*(?:\*\*)?(\d{1,3})\s*[.)]\s*(?:\*\*)?\s*(.*)$")
NO_INPUT = {"<noinput>", "<no input>", "(none)", "none", "n/a", "<none>", "no input", "noinput"}


def parse_numbered_list(text: str) -> list[tuple[int, str]]:
    """`9. Do X` lines (continuation lines joined) -> [(9, "Do X")]; unnumbered text before item one is ignored."""
    items: list[list] = []
    for line in text.splitlines():
        match = NUMBERED_ITEM.match(line)
        if match:
            items.append([int(match.group(1)), match.group(2).strip()])
        elif items and line.strip():
            items[-1][1] = f"{items[-1][1]} {line.strip()}".strip()
    return [(number, re.sub(r"\s+", " ", body).strip()) for number, body in items if body.strip()]


def continued_items(items: list[tuple[int, str]], first: int, stop: int) -> list[str]:
    """Items numbered first, first+1, ... (< stop), in order; the list ends where the numbering breaks or restarts.

    Small models often loop back to "1." or repeat a number: what follows is not a continuation of the list.
    """
    kept = []
    for number, body in items:
        if number != first + len(kept) or number >= stop:
            break
        kept.append(body)
    return kept


def clean_field(text: str) -> str:
    """One field of an instance pair: Markdown bold and blanks off; a "no input" marker (`<noinput>`...) is ""."""
    text = text.strip().strip("*").strip()
    return "" if text.lower() in NO_INPUT else text


# A pair's second field ends at a line that starts the next pair. The lookahead skips only same-line whitespace
# (`[^\S\n]`, not `\s`): tested at every position, `\n\s*` rescans a whole run of blank lines each time, quadratic
# in the run (seconds for 10k newlines). The field may end a few blank lines later; clean_field strips them.
_PAIR_PATTERNS = {
    # input first: Input ... Output ..., repeated
    "input_first": re.compile(r"Input\s*:(.*?)Output\s*:(.*?)(?=\n[^\S\n]*+(?:\*\*)?Input\s*:|\Z)", re.S | re.I),
    # output first: Class label ... Input ..., repeated
    "output_first": re.compile(r"Class label\s*:(.*?)Input\s*:(.*?)(?=\n[^\S\n]*+(?:\*\*)?Class label\s*:|\Z)",
                               re.S | re.I),
}
_FIRST_MARKER = {"input_first": re.compile(r"Input\s*:", re.I), "output_first": re.compile(r"Class label\s*:", re.I)}


def _pair_matches(text: str, mode: str):
    """What `findall` gives, in linear time: findall tries every position after the last pair, and each first marker
    there scans to the end for a second marker that is not there (quadratic in a reply of repeated "Input:")."""
    pattern, end = _PAIR_PATTERNS[mode], 0
    for marker in _FIRST_MARKER[mode].finditer(text):
        if marker.start() < end:
            continue
        found = pattern.match(text, marker.start())
        if found is None:
            return  # no second marker after this first one, so none after any later one either
        yield found.groups()
        end = found.end()


def parse_instances(text: str, mode: str) -> list[tuple[str, str]]:
    """Reply -> every (input, output) pair in it, in order. Output-first replies give (label, input), returned
    swapped; a label is returned whole, over several lines if the model wrote them (the caller counts that, rather
    than a parser cutting it). How many pairs a task may keep is the caller's rule, not a slice here."""
    pairs = []
    for first, second in _pair_matches(text, mode):
        if mode == "input_first":
            pairs.append((clean_field(first), clean_field(second)))
        else:
            pairs.append((clean_field(second), clean_field(first)))
    return pairs


def parse_yes_no(text: str) -> bool | None:
    """First word yes/no (any case, any trailing punctuation); anything else is unparseable -> None."""
    # Possessive: `\s*\**\s*` backtracks over a run of blanks quadratically (seconds for 10k spaces).
    match = re.match(r"\s*+\**+\s*+(yes|no)\b", text, re.I)
    # The first letter, not .lower() == "yes": re.I also matches "ſ" (long s) to "s", and "yeſ".lower() is no "yes".
    return None if match is None else match.group(1)[0] in "yY"


# -- one text per reply -----------------------------------------------------------------------------------------------


def clean_input(text: str) -> str:
    """The model's input, without wrapping quotes or a leading "Input:"-style tag; the first paragraph only."""
    text = text.strip().split("\n\n")[0].strip().strip('"“”').strip()
    for tag in ("input:", "sentence:", "new input:"):
        if text.lower().startswith(tag):
            text = text[len(tag):].strip()
    return text.strip('"“”').strip()


def clean_rewrite(text: str) -> str:
    """An Evol-Instruct rewrite without its wrapping quotes. Only the wrapping goes; scaffold words inside stay for
    the scaffold_copy rule to count (cutting them here would hide a failed evolution)."""
    return text.strip().strip('"').strip()


def clean_variant(text: str) -> str:
    """A reworded FLAN template without a code fence or wrapping quotes; its placeholders are checked afterwards."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").strip()
    return text.strip('"').strip()


# -- a word from a fixed set ------------------------------------------------------------------------------------------


def match_label(text: str, labels: list[str]) -> str | None:
    """The label a reply names: the whole first line, or its first word(s), any case, markup and punctuation
    around it ignored ("**True.**", "false - it is vague"). Longest label first, so "not sure" beats "not"."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.strip().strip("*_`\"'").strip()
    for prefix in ("answer:", "label:", "the answer is"):
        if line.lower().startswith(prefix):
            line = line[len(prefix):].strip().strip("*_`\"'").strip()
    lowered = line.casefold()
    for label in sorted(labels, key=len, reverse=True):
        folded = label.casefold()  # may be longer than the label ("İ" folds to two characters)
        cut = lowered[len(folded):len(folded) + 1]
        if lowered.startswith(folded) and (not cut or not cut.isalnum()):
            return label
    return None


def parse_verdict(text: str, verdicts: list[str]) -> str | None:
    """The verdict word that appears first in the reply (longest wins at the same place: "not equal" over "equal")."""
    alternatives = sorted(verdicts, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(v) for v in alternatives) + r")\b", re.IGNORECASE)
    found = pattern.search(text.replace("*", ""))
    if found is None:
        return None
    # The verdict the pattern matched, compared as the pattern compares: re.I also matches "ſ" to "s" and "ı" to "i",
    # where .lower() does not ("Yeſ", "Valıd" raised StopIteration).
    return next(v for v in verdicts if re.fullmatch(re.escape(v), found.group(1), re.IGNORECASE))
