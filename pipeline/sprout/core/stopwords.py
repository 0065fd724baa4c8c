"""English function words, read once from the one list sprout ships (core/data/stopwords_en.txt).

Used by the `punct_stopwords_only` rule (a reply made only of these says nothing) and by the report's fallback verb
parser (none of these is an instruction's main verb). Comment lines (`#`) are not words.
"""

from __future__ import annotations

from importlib.resources import files

STOPWORDS = frozenset(
    word for line in files("sprout.core").joinpath("data/stopwords_en.txt").read_text(encoding="utf-8").splitlines()
    if not line.startswith("#") for word in line.split())
