"""Parsers for model replies. They return what they could read plus, when nothing usable came back, a reason.

Small models drift from the format; the parsers accept the common drifts (extra spaces, `1)` for `1.`, Markdown
bold, trailing chatter) and leave everything else to the filter rules, which count what they drop.
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
    text = text.strip().strip("*").strip()
    return "" if text.lower() in NO_INPUT else text


_PAIR_PATTERNS = {
    # input first: Input ... Output ..., repeated
    "input_first": re.compile(r"Input\s*:(.*?)Output\s*:(.*?)(?=\n\s*(?:\*\*)?Input\s*:|\Z)", re.S | re.I),
    # output first: Class label ... Input ..., repeated
    "output_first": re.compile(r"Class label\s*:(.*?)Input\s*:(.*?)(?=\n\s*(?:\*\*)?Class label\s*:|\Z)", re.S | re.I),
}


def parse_instances(text: str, mode: str, limit: int) -> list[tuple[str, str]]:
    """Reply -> up to `limit` (input, output) pairs. Output-first replies give (label, input), returned swapped."""
    pairs = []
    for first, second in _PAIR_PATTERNS[mode].findall(text):
        if mode == "input_first":
            pairs.append((clean_field(first), clean_field(second)))
        else:
            label = clean_field(first).splitlines()[0].strip() if clean_field(first) else ""
            pairs.append((clean_field(second), label))
    return pairs[:limit]


def parse_yes_no(text: str) -> bool | None:
    """First word yes/no (any case, any trailing punctuation); anything else is unparseable -> None."""
    match = re.match(r"\s*\**\s*(yes|no)\b", text, re.I)
    return None if match is None else match.group(1).lower() == "yes"
