"""OpenAI-compatible backend (OpenAI and the hosts that copy its API, `vllm serve`, SGLang, `transformers serve`,
Ollama, llama.cpp's server) on the official async `openai` client: a batch runs as concurrent requests (at most
`max_concurrency` at once), results in input order. The client retries with exponential backoff and jitter and
honours Retry-After; sprout adds the endpoint pool: requests go to the server with the fewest outstanding requests,
and a server that keeps failing is set aside for a while. The API key comes from a named environment variable only,
and never reaches a log, cache or record.

Servers differ in what they take, and sprout finds out once per server rather than asking the user to know:
- **A prefill** (a conversation ending in an assistant message the model continues, e.g. Self-Instruct's list):
  vLLM and SGLang continue it when asked (`continue_final_message`); a server that refuses that field gets it as raw
  text on `/v1/completions` (`transformers serve`); a chat-only host (hosted APIs: 400 on the field, 404 on
  `/v1/completions`) gets the prompt file's chat-native form. The route found is said once in the log.
- **The token limit** goes as `max_tokens` until a server asks for `max_completion_tokens` (reasoning models).
- **Sampling a model cannot take** (a reasoning model refuses temperature other than 1, `top_p`...): the field is
  left out from then on, the server's default is used, and that is said once in the log and the summary.
A request the server refuses for good (400, 401, 403, 404, 422 that none of this fixes) stops the run with one
message: the status, the server's own words and the fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sprout.backends.base import Backend, Completion, Prompt, Sampling, as_completion, continuation, is_prefill
from sprout.backends.server_adaptation import (
    PREFILL_ROUTES,
    REFUSED,
    ROUTE_REFUSED,
    BackendRefused,
    adapt,
    refused_field,
    refused_for_good,
    server_words,
)
from sprout.core.errors import UserError

CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}  # vLLM's and SGLang's chat extras


class MalformedResponse(Exception):
    """A server answered 200 with something that is not a completion."""


@dataclass
class Endpoint:
    url: str
    client: object
    outstanding: int = 0
    prefill_route: str | None = None  # None: not known yet (auto)
    token_field: str = "max_tokens"
    left_out: set[str] = field(default_factory=set)  # sampling fields this server refuses
    max_n: int | None = None  # samples per request, when the server refuses `n`
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)  # one request finds the prefill route; others wait
    failures: int = 0  # consecutive
    down_until: float = 0.0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class OpenAIBackend(Backend):
    def __init__(self, base_urls: list[str], model: str, api_key_env: str | None = None, max_concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 5, set_aside_after: int = 3, set_aside_for: float = 30.0,
                 backoff_base: float = 0.5, backoff_cap: float = 8.0, prefill: str = "auto",
                 token_field: str = "auto", log: Callable[[str], None] = _stderr):
        import openai

        self.openai = openai
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise UserError(f"backend.api_key_env: the environment variable {api_key_env} is not set. Fix: export "
                            f"{api_key_env}=... (the key is read from the environment only).")
        self.key = key
        self.model, self.model_id = model, f"openai:{model}"  # the cache key names the model, not the servers
        self.max_concurrency, self.set_aside_after, self.set_aside_for = max_concurrency, set_aside_after, set_aside_for
        self.prefill, self.log = prefill, log
        self.endpoints = [Endpoint(url, openai.AsyncOpenAI(base_url=url, api_key=key or "none", timeout=timeout,
                                                          max_retries=max_retries),
                                   prefill_route=None if prefill == "auto" else prefill,
                                   token_field="max_tokens" if token_field == "auto" else token_field)
                          for url in base_urls]
        # Failures worth another try once the client's own retries are spent. A body that is not JSON (a proxy's
        # error page, a cut-off answer) is one too: the client does not retry those itself.
        self.errors = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                       openai.RateLimitError, openai.APIResponseValidationError, json.JSONDecodeError,
                       MalformedResponse)
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.failures: Counter[str] = Counter()  # failed tries by error type, for the run summary
        self.notes: list[str] = []  # adaptations, each said once
        self.refusal: BackendRefused | None = None  # once set, no more requests are sent

        # One event loop for the backend's life: the async clients keep their connections on it between batches.
        self.loop = asyncio.new_event_loop()

    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        return self.loop.run_until_complete(self._generate(batch, sampling))

    def close(self) -> None:
        if not self.loop.is_closed():
            for endpoint in self.endpoints:
                self.loop.run_until_complete(endpoint.client.close())
            self.loop.close()

    def say_once(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)
            self.log(f"backend: {note}")

    async def _generate(self, batch, sampling: Sampling) -> list[list[Completion]]:
        gate = asyncio.Semaphore(self.max_concurrency)
        # Every request of the batch ends before a refusal is raised: none is left running on the loop.
        results = await asyncio.gather(*(self._samples(prompt, sampling, gate) for prompt in batch),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise self.refusal if self.refusal and isinstance(result, BackendRefused) else result
        return list(results)

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

    @staticmethod
    def _options(endpoint: Endpoint, model: str, sampling: Sampling, n: int, seed: int) -> dict:
        """The request's fields: only what the caller set (a default value is left to the server's own default, so
        a strict server sees no field it would have to refuse), less what this server refused."""
        options = {"model": model, "n": min(n, endpoint.max_n or n), endpoint.token_field: sampling.max_tokens,
                   "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": seed,
                   "stop": list(sampling.stop)[:4], "presence_penalty": sampling.presence_penalty,
                   "frequency_penalty": sampling.frequency_penalty}
        defaults = {"top_p": 1.0, "stop": [], "presence_penalty": 0.0, "frequency_penalty": 0.0, "n": 1}
        return {k: v for k, v in options.items()
                if k not in endpoint.left_out and not (k in defaults and v == defaults[k])}

    async def _request(self, prompt: Prompt, sampling: Sampling, n: int, seed: int) -> list[Completion]:
        attempts = 0
        while True:
            if self.refusal:
                raise self.refusal
            endpoint = self._pick()
            endpoint.outstanding += 1
            try:
                options = self._options(endpoint, self.model, sampling, n, seed)
                response, route = await self._call(endpoint, prompt, options)
                completions = self._completions(response, sampling, route,
                                                prompt[-1]["content"] if route == "chat" else None)
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
            except self.openai.APIStatusError as error:
                if error.status_code not in REFUSED:
                    raise
                if adapt(endpoint, error, sampling, self.model, self.say_once):
                    continue  # the same request again, as this server wants it
                if getattr(error, "code", None) == "context_length_exceeded":  # this prompt only; the run goes on
                    return [Completion(text="", finish_reason="error",
                                       error=f"ContextLengthExceeded: {server_words(error)}") for _ in range(n)]
                self.refusal = refused_for_good(endpoint.url, error, self.key)
                raise self.refusal from None
            finally:
                endpoint.outstanding -= 1
            # Full jitter: concurrent requests that failed together do not come back together.
            await asyncio.sleep(random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempts)))

    async def _call(self, endpoint: Endpoint, prompt: Prompt, options: dict):
        """Send one request; returns the response and, for a prefill, the route it took."""
        client = endpoint.client
        if isinstance(prompt, str):  # completion mode: the legacy completions endpoint, prompt sent raw
            return await client.completions.create(prompt=prompt, **options), ""
        if not is_prefill(prompt):
            return await client.chat.completions.create(messages=prompt, **options), ""
        if endpoint.prefill_route is None:  # found out once: concurrent prefills wait for the first one's answer
            async with endpoint.probe:
                if self.refusal:  # what the first one found was a refusal for good: nothing more is sent
                    raise self.refusal
                if endpoint.prefill_route is None:
                    return await self._send_prefill(endpoint, prompt, options)
        return await self._send_prefill(endpoint, prompt, options)

    async def _send_prefill(self, endpoint: Endpoint, prompt: Prompt, options: dict):
        client = endpoint.client
        probing = endpoint.prefill_route is None
        route, refusals = endpoint.prefill_route or PREFILL_ROUTES[0], {}
        while True:
            try:
                if route == "continue":
                    response = await client.chat.completions.create(messages=prompt, extra_body=CONTINUE, **options)
                elif route == "completions":
                    response = await client.completions.create(prompt=as_completion(prompt), **options)
                else:
                    response = await client.chat.completions.create(messages=self._chat_native(prompt), **options)
            except self.openai.APIStatusError as error:
                # While probing, a refusal of the route itself moves on to the next route (a 401 or an unknown
                # model is not about the route). One that names the token limit or a sampling field is the
                # caller's to adapt; then this request comes back here.
                if (not probing or error.status_code not in ROUTE_REFUSED[route]
                        or refused_field(error, server_words(error))):
                    raise
                refusals[route] = f"{error.status_code} {server_words(error)[:160]!r}"
                route = PREFILL_ROUTES[PREFILL_ROUTES.index(route) + 1]
                continue
            if probing:
                endpoint.prefill_route = route
                if route != PREFILL_ROUTES[0]:
                    how = ("as raw text to /v1/completions" if route == "completions" else
                           "as their chat-native form (the prompt file's `chat:`: the model writes the continuation "
                           "as a new message)")
                    tried = "; ".join(f"{r}: {why}" for r, why in refusals.items())
                    self.say_once(f"{endpoint.url} does not continue a prefill ({tried}); prefilled prompts go {how}. "
                                  f"backend.prefill: {route} skips this probe.")
            return response, route

    @staticmethod
    def _chat_native(prompt: Prompt) -> list:
        native = getattr(prompt, "chat_native", None)
        if native is None:
            raise BackendRefused(
                "backend: the server cannot continue a prefill (a prompt ending in an assistant message) and this "
                "prompt has no chat-native form. Fix: add a `chat:` list of messages to the prompt file (see "
                "prompts/README.md), or use a server that continues prefills (vLLM, SGLang, transformers serve).")
        return native

    @staticmethod
    def _completions(response, sampling: Sampling, route: str = "", prefill: str | None = None) -> list[Completion]:
        try:
            usage, choices = response.usage, sorted(response.choices, key=lambda c: c.index)
        except (AttributeError, TypeError) as error:  # a 200 whose JSON is not a completion
            raise MalformedResponse(f"the answer is not a completion object: {error}") from None
        per = max(len(choices), 1)
        completions = []
        for i, choice in enumerate(choices):
            text = (choice.text if hasattr(choice, "text") else choice.message.content) or ""
            if prefill is not None:  # a chat-native answer: the prefill's own text comes off its start
                text = continuation(prefill, text)
            for stop in sampling.stop:  # servers that ignore `stop` (or more than four of them) are cut here too
                if stop in text:
                    text = text[: text.index(stop)]
            completions.append(Completion(
                text=text.strip(), finish_reason="length" if choice.finish_reason == "length" else "stop",
                prompt_tokens=(usage.prompt_tokens if usage and i == 0 else 0),  # the prompt is read once
                completion_tokens=(usage.completion_tokens if usage else 0) // per,
                route={"chat": "chat-native"}.get(route, route)))
        return completions
