"""A batched sampling loop that drops finished rows.

`model.generate` keeps every row of a batch in the forward pass until the longest one ends; with a small model
that often loops to the token limit, most decode steps are spent on rows that already finished. This loop removes a
row from the batch (and its KV cache) the moment it ends (end-of-turn token, stop string, or token budget), so
each step costs only the rows still writing. Sampling follows the usual order: presence/frequency penalty on the
logits (OpenAI's additive rule over generated tokens), then temperature, then top-p; temperature 0 is greedy.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from sprout.backends.rendering import hits_stop, stop_window


@dataclass
class Row:
    tokens: list[int]
    finish_reason: str  # "stop" (end token or stop string) or "length"
    ended_by_token: bool


def _top_p(probs: torch.Tensor, top_p: float, head: int = 256) -> torch.Tensor:
    """Nucleus filter, exact: keep tokens (most probable first) until their mass reaches top_p. The nucleus almost
    always lies within the few hundred most probable tokens, so those are found with `topk` instead of sorting the
    whole vocabulary (49k tokens for SmolLM2: a quarter of a decode step at batch 16); a row whose head holds less
    than top_p is sorted in full, so the result never differs from a full sort."""
    if top_p >= 1.0:
        return probs
    head = min(head, probs.shape[-1])
    top_probs, order = probs.topk(head, dim=-1)  # sorted, most probable first
    kept = _keep(probs, top_probs, order, top_p)
    short = top_probs.sum(-1) < top_p
    if short.any():  # rare: a distribution so flat that its nucleus is wider than the head
        kept = torch.where(short[:, None], _top_p_sorted(probs, top_p), kept)
    return kept


def _keep(probs, sorted_probs, order, top_p: float) -> torch.Tensor:
    outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # keep tokens until their mass reaches top_p
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))


def _top_p_sorted(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    return _keep(probs, sorted_probs, order, top_p)


def penalize(logits: torch.Tensor, counts: torch.Tensor, presence: float, frequency: float) -> torch.Tensor:
    """OpenAI's rule: logit -= presence * [token generated before] + frequency * (times generated)."""
    if not (presence or frequency):
        return logits
    return logits - frequency * counts - presence * (counts > 0).float()


def _pick(logits, counts, sampling) -> torch.Tensor:
    logits = penalize(logits, counts, sampling.presence_penalty, sampling.frequency_penalty)
    if sampling.temperature <= 0:
        return logits.argmax(-1)
    probs = _top_p(torch.softmax(logits / sampling.temperature, dim=-1), sampling.top_p)
    return torch.multinomial(probs, 1).squeeze(-1)


def cache_keyword(model) -> str:
    """transformers 5.2x renamed forward's `past_key_values` to `cache` (the old name warns, then goes in 5.40):
    the name this model's forward takes (a PEFT model's is its base model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@torch.inference_mode()
def sample_batch(model, tokenizer, encoded, sampling, end_ids: set[int], clock: dict | None = None) -> list[Row]:
    """Decode every row of a left-padded batch; returns each row's new tokens (end token included) and finish.
    `clock` (optional) gets the seconds of the prefill pass and of the decode loop added to its two keys."""
    started = time.perf_counter()
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    with_cache = {cache_keyword(model): cache, "use_cache": True}
    # logits_to_keep=1: only the last position's logits are needed (all of them would be batch x length x vocab).
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **with_cache,
                   logits_to_keep=1).logits[:, -1, :].float()
    next_position = positions[:, -1] + 1
    alive = list(range(ids.shape[0]))  # original row of each batch position
    counts = torch.zeros_like(logits)
    rows: list[Row | None] = [None] * ids.shape[0]
    tokens: list[list[int]] = [[] for _ in alive]
    window = stop_window(sampling.stop)
    decoding = time.perf_counter()
    for _ in range(sampling.max_tokens):
        chosen = _pick(logits, counts, sampling)
        counts[torch.arange(len(alive)), chosen] += 1
        keep = []
        for position, (row, token) in enumerate(zip(alive, chosen.tolist(), strict=True)):
            tokens[row].append(token)
            if token in end_ids:
                rows[row] = Row(tokens[row], "stop", True)
            elif hits_stop(tokenizer, tokens[row], sampling.stop, window):
                rows[row] = Row(tokens[row], "stop", False)
            elif len(tokens[row]) >= sampling.max_tokens:
                rows[row] = Row(tokens[row], "length", False)
            else:
                keep.append(position)
        if not keep:
            break
        if len(keep) < len(alive):  # drop finished rows from everything the next step touches
            index = torch.tensor(keep)
            for layer in cache.layers:
                layer.batch_select_indices(index)
            mask, next_position, counts, chosen = mask[index], next_position[index], counts[index], chosen[index]
            alive = [alive[p] for p in keep]
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=-1)
        logits = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position[:, None],
                       **with_cache, logits_to_keep=1).logits[:, -1, :].float()
        next_position = next_position + 1
    if clock is not None:
        clock["prefill"] += decoding - started
        clock["decode"] += time.perf_counter() - decoding
    return rows  # type: ignore[return-value]
