"""Largest-remainder apportionment: split a whole number of rows (or requests) by weights, exactly.

One split for the whole tool: a mix's parts per training stage (`datasets/mixing.py`) and a synthesised task's
label quotas and output-first requests (`generators/pair_synthesis/generator.py`). Each count is its exact quota
rounded down or up, and the counts add up to the total. The arithmetic is exact (a weight is the number as written,
0.3 is 3/10), so equal shares stay equal and a tie between remainders always goes to the earlier weight — with
floats, the noise in `total * w / sum` decided some ties the other way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TypeVar

Key = TypeVar("Key")
Weight = float | int | Fraction


def exact(value: Weight) -> Fraction:
    """The number as written (0.3 is 3/10, not the binary float just below it)."""
    return value if isinstance(value, Fraction) else Fraction(str(value))


def largest_remainder(size: int, weights: Sequence[Weight]) -> list[int]:
    """Counts proportional to `weights` summing to `size`: floors, then one more to the largest remainders (ties go
    to the earlier weight). Exact arithmetic, so equal shares stay equal and results never depend on float noise."""
    exact_weights = [exact(w) for w in weights]
    total = sum(exact_weights)
    quotas = [size * w / total for w in exact_weights]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: size - sum(counts)]:
        counts[i] += 1
    return counts


def quotas(total: int, weights: Mapping[Key, Weight]) -> dict[Key, int]:
    """`largest_remainder` over named weights: each key's count, in the mapping's order."""
    return dict(zip(weights, largest_remainder(total, list(weights.values())), strict=True))
