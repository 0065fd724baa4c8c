"""A loopback proxy that answers as a hosted chat-only API does (OpenAI's documented behaviour for chat models), in
front of a real `transformers serve` that does the generating.

What it refuses, with the status and error body the hosted API sends:
- `/v1/completions`: 404, "This is a chat model and not supported in the v1/completions endpoint".
- a body field outside the documented chat-completions parameters (e.g. vLLM's `continue_final_message`): 400,
  "Unrecognized request argument supplied: ...".
- a model it does not serve: 404 `model_not_found`; a wrong API key: 401 `invalid_api_key`.
- `reasoning=True` (a reasoning model): `max_tokens` (400, "Use 'max_completion_tokens' instead"), a temperature
  other than 1 (400 `unsupported_value`), and `top_p`, `presence_penalty`, `frequency_penalty` (400
  `unsupported_parameter`).
Everything else goes to the real server. Every request is logged (path, body fields, status).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackProxy

# The request body parameters of POST /v1/chat/completions in OpenAI's API reference.
DOCUMENTED_CHAT_FIELDS = frozenset({
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})
REASONING_REFUSES = ("top_p", "presence_penalty", "frequency_penalty")


@dataclass
class Logged:
    path: str
    fields: tuple[str, ...]
    status: int
    body: dict
    answer: bytes  # what the proxy answered (its own refusal, or the real server's reply)


def error(message: str, param: str | None = None, code: str | None = None,
          kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class HostedChatProxy(LoopbackProxy):
    def __init__(self, upstream: str, model: str, api_key: str | None = None, reasoning: bool = False):
        super().__init__(upstream)
        self.model, self.api_key, self.reasoning = model, api_key, reasoning
        self.log: list[Logged] = []

    def statuses(self) -> dict[tuple[str, int], int]:
        counts: dict[tuple[str, int], int] = {}
        for entry in self.log:
            counts[(entry.path, entry.status)] = counts.get((entry.path, entry.status), 0) + 1
        return counts

    def refusal(self, path: str, headers, body: dict) -> tuple[int, dict] | None:
        """The hosted API's answer to a request it refuses, or None to forward it."""
        if self.api_key is not None and headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return 401, error("Incorrect API key provided. You can find your API key in your account settings.",
                              code="invalid_api_key")
        if path.startswith("/v1/completions"):
            return 404, error("This is a chat model and not supported in the v1/completions endpoint. Did you mean "
                              "to use v1/chat/completions?", param="model")
        if not path.startswith("/v1/chat/completions"):
            return None
        if body.get("model") != self.model:
            return 404, error(f"The model `{body.get('model')}` does not exist or you do not have access to it.",
                              code="model_not_found")
        unknown = sorted(set(body) - DOCUMENTED_CHAT_FIELDS)
        if unknown:
            return 400, error(f"Unrecognized request argument supplied: {', '.join(unknown)}")
        if self.reasoning:
            if "max_tokens" in body:
                return 400, error("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                  "'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
            if body.get("temperature", 1) != 1:
                return 400, error(f"Unsupported value: 'temperature' does not support {body['temperature']} with "
                                  "this model. Only the default (1) value is supported.", param="temperature",
                                  code="unsupported_value")
            for name in REASONING_REFUSES:
                if name in body:
                    return 400, error(f"Unsupported parameter: '{name}' is not supported with this model.",
                                      param=name, code="unsupported_parameter")
        return None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        refused = self.refusal(request.path, request.headers, body)
        if refused:
            status, payload = refused[0], json.dumps(refused[1]).encode()
        else:
            status, _, payload = self.forward(request, raw)
        self.log.append(Logged(request.path, tuple(sorted(body)), status, body, payload))
        self.answer(request, status, payload)
