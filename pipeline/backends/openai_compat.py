"""OpenAI-compatible backend (OpenAI, `vllm serve`, `transformers serve`, Ollama, llama.cpp's server) on the official
async `openai` client: a batch runs as concurrent requests (at most `max_concurrency` at once), results in input
order. The client retries with exponential backoff and jitter and honours Retry-After; sprout adds the endpoint
pool: requests go to the server with the fewest outstanding requests, and a server that keeps failing is set aside
for a while. The API key comes from a named environment variable only, and never reaches a log, cache or record.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass

from sprout.backends.base import Backend, Completion, Prompt, Sampling, as_completion, is_prefill
from sprout.errors import UserError

CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}  # vLLM's chat extras


class MalformedResponse(Exception):
    """A server answered 200 with something that is not a completion."""


@dataclass
class Endpoint:
    url: str
    client: object
    outstanding: int = 0
    continues_prefill: bool | None = None  # None: not known yet
    failures: int = 0  # consecutive
    down_until: float = 0.0


class OpenAIBackend(Backend):
    def __init__(self, base_urls: list[str], model: str, api_key_env: str | None = None, max_concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 5, set_aside_after: int = 3, set_aside_for: float = 30.0,
                 backoff_base: float = 0.5, backoff_cap: float = 8.0):
        import openai

        self.openai = openai
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise UserError(f"backend.api_key_env: the environment variable {api_key_env} is not set. Fix: export "
                            f"{api_key_env}=... (the key is read from the environment only).")
        self.model, self.model_id = model, f"openai:{model}"  # the cache key names the model, not the servers
        self.max_concurrency, self.set_aside_after, self.set_aside_for = max_concurrency, set_aside_after, set_aside_for
        self.endpoints = [Endpoint(url, openai.AsyncOpenAI(base_url=url, api_key=key or "none", timeout=timeout,
                                                          max_retries=max_retries)) for url in base_urls]
        # Failures worth another try once the client's own retries are spent. A body that is not JSON (a proxy's
        # error page, a cut-off answer) is one too: the client does not retry those itself.
        self.errors = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                       openai.RateLimitError, openai.APIResponseValidationError, json.JSONDecodeError,
                       MalformedResponse)
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.failures: Counter[str] = Counter()  # failed tries by error type, for the run summary

        # One event loop for the backend's life: the async clients keep their connections on it between batches.
        self.loop = asyncio.new_event_loop()

    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        return self.loop.run_until_complete(self._generate(batch, sampling))

    def close(self) -> None:
        if not self.loop.is_closed():
            for endpoint in self.endpoints:
                self.loop.run_until_complete(endpoint.client.close())
            self.loop.close()

    async def _generate(self, batch, sampling: Sampling) -> list[list[Completion]]:
        gate = asyncio.Semaphore(self.max_concurrency)
        return list(await asyncio.gather(*(self._samples(prompt, sampling, gate) for prompt in batch)))

    async def _samples(self, prompt: Prompt, sampling: Sampling, gate) -> list[Completion]:
        """`n` completions; servers that return fewer choices than asked (e.g. transformers serve) get asked again,
        one sample at a time with the next seeds, so `n` always holds."""
        out: list[Completion] = []
        while len(out) < sampling.n:
            async with gate:
                out += await self._request(prompt, sampling, sampling.n - len(out), sampling.seed + len(out))
        return out[: sampling.n]

    def _pick(self) -> Endpoint:
        now = time.monotonic()
        usable = [e for e in self.endpoints if e.down_until <= now] or self.endpoints
        return min(usable, key=lambda e: (e.outstanding, e.failures))

    async def _request(self, prompt: Prompt, sampling: Sampling, n: int, seed: int) -> list[Completion]:
        options = dict(model=self.model, n=n, max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                       top_p=sampling.top_p, seed=seed, stop=list(sampling.stop)[:4] or None,
                       presence_penalty=sampling.presence_penalty, frequency_penalty=sampling.frequency_penalty)
        attempts = 0
        while True:
            endpoint = self._pick()
            endpoint.outstanding += 1
            try:
                response = await self._call(endpoint, prompt, options)
                completions = self._completions(response, sampling)
                endpoint.failures = 0
                return completions
            except self.errors as error:
                self.failures[type(error).__name__] += 1
                endpoint.failures += 1
                if endpoint.failures >= self.set_aside_after:  # the client's own retries are spent: rest it
                    endpoint.down_until = time.monotonic() + self.set_aside_for
                attempts += 1
                if attempts >= len(self.endpoints) * self.set_aside_after:
                    # Out of retries: this request fails (not cached, counted; the run stops only if too many do).
                    urls = ", ".join(e.url for e in self.endpoints)
                    why = (f"{type(error).__name__}: no usable answer from {urls} after {attempts} tries (each "
                           f"with {self.max_retries} client retries): {error}")
                    return [Completion(text="", finish_reason="error", error=why) for _ in range(n)]
            finally:
                endpoint.outstanding -= 1
            # Full jitter: concurrent requests that failed together do not come back together.
            await asyncio.sleep(random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempts)))

    async def _call(self, endpoint: Endpoint, prompt: Prompt, options: dict):
        client = endpoint.client
        if isinstance(prompt, str):  # completion mode: the legacy completions endpoint, prompt sent raw
            return await client.completions.create(prompt=prompt, **options)
        if not is_prefill(prompt):
            return await client.chat.completions.create(messages=prompt, **options)
        # A prefill (e.g. Self-Instruct's list that the model continues): vLLM and SGLang continue the final
        # assistant message when asked; a server that refuses those fields gets the conversation as raw text.
        if endpoint.continues_prefill is not False:
            try:
                response = await client.chat.completions.create(messages=prompt, extra_body=CONTINUE, **options)
                endpoint.continues_prefill = True
                return response
            except (self.openai.BadRequestError, self.openai.UnprocessableEntityError):
                if endpoint.continues_prefill:  # it did before: this refusal is about something else
                    raise
                endpoint.continues_prefill = False
        return await client.completions.create(prompt=as_completion(prompt), **options)

    @staticmethod
    def _completions(response, sampling: Sampling) -> list[Completion]:
        try:
            usage, choices = response.usage, sorted(response.choices, key=lambda c: c.index)
        except (AttributeError, TypeError) as error:  # a 200 whose JSON is not a completion
            raise MalformedResponse(f"the answer is not a completion object: {error}") from None
        per = max(len(choices), 1)
        completions = []
        for i, choice in enumerate(choices):
            text = (choice.text if hasattr(choice, "text") else choice.message.content) or ""
            for stop in sampling.stop:  # servers that ignore `stop` (or more than four of them) are cut here too
                if stop in text:
                    text = text[: text.index(stop)]
            completions.append(Completion(
                text=text.strip(), finish_reason="length" if choice.finish_reason == "length" else "stop",
                prompt_tokens=(usage.prompt_tokens if usage and i == 0 else 0),  # the prompt is read once
                completion_tokens=(usage.completion_tokens if usage else 0) // per))
        return completions
