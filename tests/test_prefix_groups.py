"""Where a request's KV stream starts (backends/prefix_groups.py), against a brute-force reading of the rule on
random prompts built to share prefixes of every length around the thresholds."""

import random

from sprout.backends.prefix_groups import admission_order, common_prefix, pick_start


def brute_lcp(a, b) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def random_prompts(rng: random.Random, count: int) -> list[list[int]]:
    """Prompts over a 3-token alphabet, most grown from a few stems, so long shared prefixes are common."""
    stems = [[rng.randrange(3) for _ in range(rng.randint(0, 40))] for _ in range(3)]
    return [rng.choice(stems)[:rng.randint(0, 40)] + [rng.randrange(3) for _ in range(rng.randint(1, 30))]
            for _ in range(count)]


def test_pick_start_takes_the_longest_computed_share_and_waits_only_for_a_worthwhile_one():
    rng = random.Random(5)
    for _ in range(3000):
        prompts = random_prompts(rng, rng.randint(2, 7))
        prompt, others = prompts[0], prompts[1:]
        shared = min(common_prefix(prompts), min(map(len, prompts)) - 1)
        gain = rng.randint(1, 8)
        in_flight = [(p, rng.randint(0, len(p))) for p in others]
        start = pick_start(prompt, shared, in_flight, min_gain=gain)
        shares = [min(brute_lcp(prompt, p), len(prompt) - 1) for p, _ in in_flight]
        available = [min(share, computed) for share, (_, computed) in zip(shares, in_flight, strict=True)]
        best = max(available, default=0)
        best = best if best >= shared + gain else shared
        potential = max(shares, default=0)
        should_wait = potential >= shared + gain and potential - best >= gain
        assert start.wait == should_wait
        if start.wait:
            continue
        assert start.length == best
        if start.source is None:
            assert best == shared
        else:
            assert available[start.source] == start.length >= shared + gain
        assert start.length <= len(prompt) - 1  # a request keeps its last prompt token to itself


def test_admission_order_puts_prompts_sharing_a_prefix_next_to_each_other():
    rng = random.Random(9)
    for _ in range(300):
        prompts = random_prompts(rng, rng.randint(1, 12))
        order = admission_order(prompts)
        assert sorted(order) == list(range(len(prompts)))
        for a, b in zip(order, order[1:], strict=False):
            assert (prompts[a], a) < (prompts[b], b)
        # Between two prompts, every prompt admitted shares at least as long a prefix with the first of them.
        for i, a in enumerate(order):
            for j in range(i + 2, len(order)):
                lcp = brute_lcp(prompts[a], prompts[order[j]])
                assert all(brute_lcp(prompts[a], prompts[order[k]]) >= lcp for k in range(i + 1, j))
