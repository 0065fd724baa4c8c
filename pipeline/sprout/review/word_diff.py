"""Word-level differences between two texts, for side-by-side views (a near-duplicate and its neighbour, an
evolution and its parent): each side as segments ["same" | "del" | "ins", text], whitespace kept."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

# A word with the whitespace after it (and any leading whitespace on its own): words are what is compared, so an
# inserted phrase shows as one run, not as words split by "unchanged" spaces.
_TOKENS = re.compile(r"^\s+|\S+\s*")
MAX_PAIRS = 4_000_000  # words x words: two 2,000-word texts, ~0.5 s; beyond, no diff


def word_diff(before: str, after: str) -> dict[str, list[list[str]]]:
    """`left`: `before` with the words `after` lacks marked "del"; `right`: `after` with its new words marked "ins".
    Joining a side's texts gives that text back exactly."""
    a, b = _TOKENS.findall(before or ""), _TOKENS.findall(after or "")
    if len(a) * len(b) > MAX_PAIRS:  # the matcher is quadratic: a long output pair is shown whole, unmarked
        return {"left": [["same", before]] if before else [], "right": [["same", after]] if after else [],
                "skipped": True}
    matcher = SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False)
    left: list[list[str]] = []
    right: list[list[str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            _append(left, "same", a[i1:i2])
            _append(right, "same", b[j1:j2])
        else:
            _append(left, "del", a[i1:i2])
            _append(right, "ins", b[j1:j2])
    return {"left": left, "right": right}


def _append(side: list[list[str]], op: str, tokens: list[str]) -> None:
    if not tokens:
        return
    text = "".join(tokens)
    if op != "same" and not text.strip():
        op = "same"  # a run of whitespace alone is shown plain
    if side and side[-1][0] == op:
        side[-1][1] += text
    else:
        side.append([op, text])
