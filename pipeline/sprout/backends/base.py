"""The backend contract: a batch of prompts in, `n` completions for each out, with token usage.

A prompt is either a chat conversation (a list of role/content messages, rendered with the model's chat template)
or a plain string (completion mode: sent raw, for base models and list continuation as Self-Instruct was designed).
Every backend serves both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]
Prompt = list[Message] | str  # chat conversation, or a raw completion prompt


def as_completion(messages: list[Message]) -> str:
    """A conversation as one raw text: the contents joined by blank lines, so a final assistant message (a
    prefill) is where the text ends and the model goes on. For servers and prompt files without a chat form."""
    return "\n\n".join(m["content"] for m in messages)


def is_prefill(prompt: Prompt) -> bool:
    """A conversation ending in an assistant message: the model continues that message."""
    return not isinstance(prompt, str) and prompt[-1]["role"] == "assistant"


class Prefilled(list):
    """A conversation ending in a prefill that also carries its chat-native form (the prompt file's `chat:`): the
    same request as a plain chat, whose answer is a new message that starts where the prefill starts. Servers that
    cannot continue a prefill (hosted chat-only APIs) get that form. It is the prefilled conversation everywhere
    else, the cache key included: an answer is stored as the continuation of the prefill whichever way it came."""

    def __init__(self, messages: list[Message], chat_native: list[Message]):
        super().__init__(messages)
        self.chat_native = chat_native


def continuation(prefill: str, reply: str) -> str:
    """A chat-native answer as the continuation of the prefill: the prefill's own text is taken off its start
    (e.g. "9." before the ninth task). An answer that does not start with it is kept whole, for the parser to judge
    (nothing is cut away unseen)."""
    reply, prefill = reply.lstrip(), prefill.strip()
    return reply[len(prefill):] if prefill and reply.startswith(prefill) else reply


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
    finish_reason: str  # "stop" (ended itself or at a stop string), "length" (hit max_tokens), "error" (no answer)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str = ""  # finish_reason "error": why the backend gave no answer after its retries (never cached)
    route: str = ""  # a prefill's way to the server: continue, completions or chat-native (OpenAI backend)

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error"


def rejection_rule(reply: Completion, rule: str, reason: str) -> tuple[str, str]:
    """The rule and reason for a reply a generator cannot use: `backend_error` when there was no answer at all
    (a rerun asks again), else the generator's own parse rule."""
    return ("backend_error", reply.error) if reply.failed else (rule, reason)


COUNTS = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "cached_prompt_tokens",
          "cached_completion_tokens", "failed")


def empty_row() -> dict[str, float]:
    return {**dict.fromkeys(COUNTS, 0), "seconds": 0.0}


@dataclass
class Usage:
    """Running totals: samples made by the model (`calls`) and served from the cache (`cache_hits`), tokens in and
    out for each (fresh and cached apart), and seconds spent waiting for the model; the same per model and
    generator in `by_model` (model ids name the backend: `transformers:`, `openai:`, `vllm:`)."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    failed: int = 0  # samples the backend could not produce after its retries (not cached: a rerun asks again)
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)  # those failures by reason
    prefill_routes: dict[str, int] = field(default_factory=dict)  # fresh prefilled requests by route
    notes: list[str] = field(default_factory=list)  # what the backend adapted to a server, each said once
    by_model: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def row(self, model: str, generator: str) -> dict[str, float]:
        return self.by_model.setdefault(model, {}).setdefault(generator or "other", empty_row())

    def merge(self, other: Usage) -> None:
        for name in (*COUNTS, "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, count in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + count
        for route, count in other.prefill_routes.items():
            self.prefill_routes[route] = self.prefill_routes.get(route, 0) + count
        self.notes += [note for note in other.notes if note not in self.notes]
        for model, generators in other.by_model.items():
            for generator, counts in generators.items():
                mine = self.row(model, generator)
                for key, value in counts.items():
                    mine[key] += value

    def add(self, completion: Completion, model: str, generator: str) -> None:
        row = self.row(model, generator)
        if completion.failed:
            self.failed += 1
            row["failed"] += 1
            reason = completion.error.split(":")[0]  # the error type, e.g. APIConnectionError
            self.failures[reason] = self.failures.get(reason, 0) + 1
            return
        if completion.cached:
            pairs = (("cache_hits", 1), ("cached_prompt_tokens", completion.prompt_tokens),
                     ("cached_completion_tokens", completion.completion_tokens))
        else:
            pairs = (("calls", 1), ("prompt_tokens", completion.prompt_tokens),
                     ("completion_tokens", completion.completion_tokens))
            if completion.route:
                self.prefill_routes[completion.route] = self.prefill_routes.get(completion.route, 0) + 1
        for key, value in pairs:
            setattr(self, key, getattr(self, key) + value)
            row[key] += value

    def add_time(self, seconds: float, model: str, generator: str) -> None:
        self.seconds += seconds
        self.row(model, generator)["seconds"] += seconds


class Backend(ABC):
    """Batch-first: a backend gets the whole batch at once so it can pad and batch (local), or run it concurrently.

    The response cache (cache.py) wraps every backend and keys each answer on what decides it: `model_id`, the
    prompt, the sampling settings, the sample index, and `cache_extras()`. A backend whose answers depend on anything
    more says so there, or its answers would be served for a setting that changes them. `notes` is what it adapted
    to a server (said once), carried into the run's summary by the cache.
    """

    model_id: str  # names the model in cache keys, lineage and usage: changes when its answers would
    notes: Sequence[str] = ()

    @abstractmethod
    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """Return `sampling.n` completions for each prompt, in input order."""

    def cache_extras(self) -> dict[str, Any]:
        """What else decides this backend's answers, for the cache key (JSON values); none by default, and then the
        key is exactly model, prompt, sampling and sample index."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
