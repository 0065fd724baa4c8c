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

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

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


class HostedChatProxy:
    def __init__(self, upstream: str, model: str, api_key: str | None = None, reasoning: bool = False):
        self.upstream, self.model, self.api_key, self.reasoning = urlsplit(upstream), model, api_key, reasoning
        self.log: list[Logged] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.handle(self)

            def do_POST(self):
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostedChatProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

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
            status, payload = self._forward(request, raw)
        self.log.append(Logged(request.path, tuple(sorted(body)), status, body, payload))
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _forward(self, request, raw: bytes) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=600)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
            connection.request(request.command, request.path, body=raw, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
