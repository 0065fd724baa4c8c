"""Prompt prefixes a call's requests share beyond the one all of them share, and where each request copies its own.

A call often mixes a few prompt files: an Evol-Instruct round draws one of six operations per row, so its prompts
share only the chat template's first tokens call-wide, while the rows of one operation share that operation's whole
header (~140 tokens; the row's text is ~15). The engine computes the call-wide prefix once; beyond it, a request
copies the KV stream of a request already in flight that has the longest part of its prompt computed (and cuts the
copy back to that part), like a radix-tree prefix cache over the requests in flight. Requests are admitted in token
order, so the ones sharing most are in flight together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Tokens a copy must bring beyond the call-wide prefix to be worth it; a request waits for one in flight to finish
# prefilling a part it shares only if that brings this many more (a wait costs a pass; a copy, a few tokens' work).
MIN_GAIN = 32


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all sequences share."""
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for other in sequences[1:]:
        n = 0
        while n < length and other[n] == first[n]:
            n += 1
        length = n
    return length


def admission_order(prompts: Sequence[Sequence[int]]) -> list[int]:
    """Request indexes in token order: prompts sharing a prefix are neighbours (ties keep call order)."""
    return sorted(range(len(prompts)), key=lambda i: (list(prompts[i]), i))


@dataclass
class Start:
    source: int | None  # the in-flight request to copy from; None: the call-wide prefix
    length: int  # prompt tokens the request has once copied
    wait: bool = False  # a request in flight will soon have MIN_GAIN or more tokens more of this prompt


def pick_start(prompt: Sequence[int], shared: int, in_flight: Sequence[tuple[Sequence[int], int]],
               min_gain: int = MIN_GAIN) -> Start:
    """Where a request's stream starts. `in_flight`: (prompt, tokens of it computed) of the requests in flight that
    are not themselves waiting. A request always keeps its last prompt token to itself (its logits start it)."""
    available, potential = Start(None, shared), shared
    for i, (other, computed) in enumerate(in_flight):
        together = min(common_prefix([prompt, other]), len(prompt) - 1)
        potential = max(potential, together)
        if min(together, computed) > available.length:
            available = Start(i, min(together, computed))
    if available.length < shared + min_gain:
        available = Start(None, shared)
    if potential >= shared + min_gain and potential - available.length >= min_gain:
        return Start(None, shared, wait=True)
    return available
