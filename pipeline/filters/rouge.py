"""ROUGE-L near-duplicate index: the highest ROUGE-L F-measure of a text against everything accepted so far.

This version scores pair by pair with `rouge-score` itself (the reference implementation Self-Instruct and Alpaca
use), so its keep/drop decisions are the reference ones by construction. It keeps one contract — `add(text)` and
`nearest(text) -> (score, text)` — so a faster exact index can replace it without touching the rule.
"""

from __future__ import annotations

from rouge_score import rouge_scorer


class RougeIndex:
    def __init__(self) -> None:
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self._texts: list[str] = []

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        self._texts.append(text)

    def nearest(self, text: str) -> tuple[float, str | None]:
        best, match = 0.0, None
        for other in self._texts:
            score = self._scorer.score(other, text)["rougeL"].fmeasure
            if score > best:
                best, match = score, other
        return best, match
