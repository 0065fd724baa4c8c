"""A loopback proxy that asks the real server each distinct request once per test session.

The OpenAI-compatible tests run whole `sprout data` runs several times over: clean, through faults, past the retry
budget, against a dead backend and resumed, with an API key. What those tests check is sprout's bookkeeping (retries,
rejects, resume, what reaches the server), and every one of them ends by comparing its files with the clean run's:
the same requests must come back with the same answers. `transformers serve` answers one request at a time on the
CPU, so asking it the same seeded request again costs seconds and proves nothing new about sprout. This proxy
forwards a request the first time its method, path and body are seen, keeps a 200 answer, and gives later identical
requests that answer. A request sprout had changed (another seed, another prompt) is new here and goes to the
server, so a run that asked for something else still ends with different files and fails the comparison.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackProxy


class MemoProxy(LoopbackProxy):
    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.answers: dict[tuple[str, str, bytes], tuple[int, dict[str, str], bytes]] = {}
        self._locks: dict[tuple[str, str, bytes], threading.Lock] = {}
        self._guard = threading.Lock()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        key = (request.command, request.path, body)
        with self._guard:  # one lock per distinct request: a concurrent twin waits for the first answer
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self.answers:
                status, headers, payload = self.answers[key]
            else:
                status, headers, payload = self.forward(request, body)
                if status == 200 and request.path.startswith("/v1/"):
                    self.answers[key] = (status, headers, payload)
        self.answer(request, status, payload, {"Content-Type": headers.get("content-type", "application/json")})
