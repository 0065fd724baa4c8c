"""What model calls cost: one formula, for the run's usage (`priced`) and for the dry run's estimate.

A price is per million tokens, input and output apart, as providers quote it (`backend.price` in the config; its
JSON form, `{"input_per_million": ..., "output_per_million": ..., "currency": ...}`, is what report.json keeps under
`usage.prices` and what the dry run reads back). Answers served from the response cache cost nothing: they are
priced only to show what the cache saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sprout.config.base import PriceConfig


def cost(prompt_tokens: float, completion_tokens: float, price: Mapping[str, float]) -> float:
    """Tokens at a price given per million (a mapping with `input_per_million` and `output_per_million`)."""
    return (prompt_tokens * price["input_per_million"] + completion_tokens * price["output_per_million"]) / 1e6


def priced(usage: dict, prices: dict[str, PriceConfig | None]) -> dict:
    """Adds `cost` to each model/generator row with a price, and a `cost` total: what the run paid for fresh
    tokens, and what the cache saved (cached tokens at the same price). Models without a price are listed."""
    if not any(prices.values()):
        return usage
    paid = saved = 0.0
    for model, generators in usage["by_model"].items():
        price = prices.get(model)
        if not price:
            continue
        rates = price.model_dump()
        for row in generators.values():
            row["cost"] = cost(row["prompt_tokens"], row["completion_tokens"], rates)
            saved += cost(row["cached_prompt_tokens"], row["cached_completion_tokens"], rates)
            paid += row["cost"]
    currency = next(p.currency for p in prices.values() if p)
    usage["cost"] = {"total": paid, "saved_by_cache": saved, "currency": currency,
                     "unpriced_models": sorted(m for m in usage["by_model"] if not prices.get(m))}
    usage["prices"] = {model: price.model_dump() for model, price in prices.items() if price}
    return usage
