"""The one largest-remainder split (`sprout.core.apportion`) against the two it replaced.

`datasets/mixing.py` had an exact version (Fractions); pair synthesis had a float version (`quotas`). The merged one
is the exact one: it equals the mix's on every input, and the pair-synthesis one wherever that one's floats did not
break a tie between equal remainders (its stated rule, "ties to the earlier label", lost to float noise there:
3 split 0.5 : 0.1 has remainders 1/2 and 1/2, and the floats gave the extra one to the later label).
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sprout.core.apportion import exact, largest_remainder, quotas


# The two old splits, verbatim, as they were before the merge: the oracles of the tests below.
def old_largest_remainder(size: int, weights: list[float | Fraction]) -> list[int]:  # datasets/mixing.py
    exact_weights = [exact(w) for w in weights]
    total = sum(exact_weights)
    quotas = [size * w / total for w in exact_weights]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: size - sum(counts)]:
        counts[i] += 1
    return counts


def old_quotas(total: int, weights: dict[str, float]) -> dict[str, int]:  # generators/pair_synthesis/generator.py
    whole = sum(weights.values())
    exact = {label: total * w / whole for label, w in weights.items()}
    counts = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(weights, key=lambda label: (-(exact[label] - counts[label]), list(weights).index(label)))
    for label in by_remainder[: total - sum(counts.values())]:
        counts[label] += 1
    return counts


# Weights as configs and the pair-synthesis planner give them: decimals as written, and computed floats.
DECIMALS = st.decimals(min_value="0.001", max_value="100", places=3).map(float)
FLOATS = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
WEIGHTS = st.lists(st.one_of(DECIMALS, FLOATS, st.integers(1, 20)), min_size=1, max_size=8)
SIZES = st.integers(0, 2000)


@settings(max_examples=1500, deadline=None)
@given(WEIGHTS, SIZES)
def test_equals_the_mix_split_everywhere(weights, size):
    assert largest_remainder(size, weights) == old_largest_remainder(size, weights)


@settings(max_examples=1500, deadline=None)
@given(WEIGHTS, SIZES)
@example([0.5, 0.1], 3)  # a tie the floats broke: the old split gave {a: 2, b: 1}
@example([1, 1, 1], 10)
def test_equals_the_pair_synthesis_split_except_where_floats_broke_a_tie(weights, size):
    named = {f"label{i}": w for i, w in enumerate(weights)}
    new, old = quotas(size, named), old_quotas(size, named)
    assert list(new) == list(named) and sum(new.values()) == size
    if new == old:
        return
    # Where they differ, the labels that differ all have the same exact remainder (a tie, up to float noise in the
    # old one), and the new split gives the extra ones to the earliest of them.
    whole = sum(exact(w) for w in weights)
    remainder = {k: (size * exact(w) / whole) % 1 for k, w in named.items()}
    differ = [k for k in named if new[k] != old[k]]
    assert max(remainder[k] for k in differ) - min(remainder[k] for k in differ) < Fraction(1, 10**9)
    gained = [k for k in differ if new[k] > old[k]]
    assert differ[: len(gained)] == gained


def test_counts_are_exact_quotas_rounded_and_sum_to_the_total():
    assert quotas(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert quotas(3, {"a": 0.5, "b": 0.1}) == {"a": 3, "b": 0}
    assert largest_remainder(7, [0.2, 0.5, 0.3]) == [1, 4, 2]
