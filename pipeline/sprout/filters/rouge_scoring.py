"""ROUGE-L as `rouge-score` computes it, exactly: the tokens, the LCS and the F-measure, for one pair of texts.

`rouge_scorer.RougeScorer(["rougeL"])` is a pure-Python O(m*n) DP per pair. The same score comes out here:

* the same tokens (rouge-score's default tokenizer, no stemmer), or, opt-in, Unicode words for non-Latin data;
* the same LCS length, computed in C by rapidfuzz on token-id sequences (each id encoded as one code point of a str,
  the fastest input rapidfuzz takes);
* the same float formula, in the same operation order: P = lcs/len(prediction), R = lcs/len(target),
  F = 2*P*R/(P+R) — so a score that is 0.7000000000000001 in rouge-score is that here too, and `> threshold` agrees.

The index over many texts (`fast_rouge.FastRougeIndex`) is built on these pieces.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from rapidfuzz.distance import LCSseq

__all__ = ["rouge_l", "tokenize"]

# rouge-score lowercases, turns every run of non-[a-z0-9] into a space and splits: exactly the [a-z0-9] runs.
_ROUGE_WORD = re.compile(r"[a-z0-9]+")
# Han (with extensions and compatibility ideographs), Hiragana, Katakana, Hangul: one token per character, since
# these scripts do not put spaces between words.
_CJK = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK += "\U00020000-\U0003134f"


@lru_cache(maxsize=1)
def _unicode_word_re() -> re.Pattern[str]:
    # Python's \w has no combining marks, so a Devanagari or Thai vowel sign would split a word in two; let marks
    # continue a word. Built on first use (a scan of the code points) so that rouge mode never pays for it.
    marks = "".join(chr(c) for c in range(0x300, 0x1F000) if unicodedata.category(chr(c))[0] == "M")
    return re.compile(rf"[{_CJK}]|[^\W_{_CJK}](?:[^\W_{_CJK}]|[{marks}])*")


def tokenize(text: str, mode: str = "rouge") -> list[str]:
    """Tokens as the index sees them.

    "rouge": rouge-score's default tokenizer, exactly — so non-Latin text (Chinese, Russian, ...) has no tokens,
    scores 0 against everything and is never deduplicated, as with the reference.
    "unicode": a deliberate, opt-in departure for non-Latin data — NFKC, casefold, words of Unicode letters and
    digits (with their combining marks), and each CJK/Hiragana/Katakana/Hangul character a token of its own.
    """
    if mode == "rouge":
        return _ROUGE_WORD.findall(text.lower())
    if mode == "unicode":
        return _unicode_word_re().findall(unicodedata.normalize("NFKC", text).casefold())
    raise ValueError(f"unknown tokenizer mode {mode!r}; use 'rouge' or 'unicode'")


def _char(i: int) -> str:
    # One code point per token id for rapidfuzz, stepping over the surrogates, which are not characters.
    return chr(i if i < 0xD800 else i + 0x800)


def _fmeasure(lcs: int, target_len: int, prediction_len: int) -> float:
    # rouge_scorer._score_lcs and scoring.fmeasure, the same float operations in the same order.
    if not lcs:
        return 0.0
    precision, recall = lcs / prediction_len, lcs / target_len
    return 2 * precision * recall / (precision + recall)


def rouge_l(target: str, prediction: str, mode: str = "rouge") -> float:
    """ROUGE-L F-measure of one pair, equal to `RougeScorer(["rougeL"]).score(target, prediction)` in rouge mode."""
    a, b = tokenize(target, mode), tokenize(prediction, mode)
    if not a or not b:
        return 0.0
    vocab: dict[str, int] = {}
    enc = ["".join([_char(vocab.setdefault(t, len(vocab))) for t in toks]) for toks in (a, b)]
    return _fmeasure(int(LCSseq.similarity(*enc)), len(a), len(b))
