"""The backend contract: a batch of prompts in, `n` completions for each out, with token usage.

A prompt is either a chat conversation (a list of role/content messages, rendered with the model's chat template)
or a plain string (completion mode: sent raw, for base models and list continuation as Self-Instruct was designed).
Every backend serves both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]
Prompt = list[Message] | str  # chat conversation, or a raw completion prompt


def is_completion(prompt: Prompt) -> bool:
    return isinstance(prompt, str)


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def for_key(self) -> dict[str, Any]:
        """What identifies a sample in the cache: everything but `n` (the sample index is keyed separately)."""
        data = asdict(self)
        data.pop("n")
        data["stop"] = list(self.stop)
        return data

    def for_lineage(self) -> dict[str, Any]:
        data = self.for_key()
        data["n"] = self.n
        return data


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (ended by itself or at a stop string) or "length" (hit max_tokens)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass
class Usage:
    """Running totals for the summary: model calls made, answers served from the cache, tokens in and out."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    by_generator: dict[str, dict[str, int]] = field(default_factory=dict)

    def merge(self, other: Usage) -> None:
        for name in ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cached_prompt_tokens",
                     "cached_completion_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for generator, counts in other.by_generator.items():
            mine = self.by_generator.setdefault(generator, dict.fromkeys(counts, 0))
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value

    def add(self, completion: Completion, generator: str) -> None:
        per = self.by_generator.setdefault(generator, {"calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                                                       "completion_tokens": 0})
        if completion.cached:
            self.cache_hits += 1
            self.cached_prompt_tokens += completion.prompt_tokens
            self.cached_completion_tokens += completion.completion_tokens
            per["cache_hits"] += 1
        else:
            self.calls += 1
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens
            per["calls"] += 1
        per["prompt_tokens"] += completion.prompt_tokens
        per["completion_tokens"] += completion.completion_tokens


class Backend(ABC):
    """Batch-first: a backend gets the whole batch at once so it can pad and batch (local), or run it concurrently."""

    model_id: str

    @abstractmethod
    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """Return `sampling.n` completions for each prompt, in input order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
