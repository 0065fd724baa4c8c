"""A loopback HTTP proxy that injects faults in front of a real server (here: `transformers serve`).

Each request takes the next fault from a plan (a list, then a seeded rate): `ok` forwards it; `429` answers Too Many
Requests with Retry-After; `500` an internal error; `drop` closes the connection without an answer (what a refused
or reset connection looks like to the client); `truncate` forwards, then cuts the body in half and closes;
`garbage` answers 200 with a body that is not JSON; `stall` holds the request past the client's timeout. Every
request is logged with its time, path and fault, so tests can check what the client did about each one.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("429", "500", "drop", "truncate", "garbage", "stall")


@dataclass
class Logged:
    at: float
    path: str
    fault: str
    fields: tuple[str, ...] = ()  # the JSON body's top-level keys
    authorization: str = ""


@dataclass
class FaultPlan:
    first: list[str] = field(default_factory=list)  # faults for the first requests, in order
    rate: float = 0.0  # after those: each request faults with this probability (a fault drawn from `kinds`)
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    retry_after: float = 1.0
    stall_for: float = 5.0

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            if self.first:
                return self.first.pop(0)
            return self._rng.choice(self.kinds) if self._rng.random() < self.rate else "ok"


class FaultProxy:
    def __init__(self, upstream: str, plan: FaultPlan):
        self.upstream, self.plan, self.log = urlsplit(upstream), plan, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the proxy keeps its own log
                pass

            def do_GET(self):
                proxy.handle(self)

            def do_POST(self):
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def faults(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.log:
            counts[entry.fault] = counts.get(entry.fault, 0) + 1
        return counts

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        fault = self.plan.next() if request.path.startswith("/v1/") else "ok"
        try:
            fields = tuple(sorted(json.loads(body))) if body else ()
        except ValueError:
            fields = ()
        self.log.append(Logged(time.monotonic(), request.path, fault, fields,
                               request.headers.get("Authorization", "")))
        if fault == "drop":
            request.close_connection = True
            request.connection.close()
            return
        if fault in ("429", "500"):
            headers = {"Retry-After": f"{self.plan.retry_after:g}"} if fault == "429" else {}
            self._answer(request, int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode(),
                         headers)
            return
        if fault == "garbage":
            self._answer(request, 200, b"<html>this is not JSON", {})
            return
        if fault == "stall":
            time.sleep(self.plan.stall_for)
        status, headers, payload = self._forward(request, body)
        if fault == "truncate":
            request.send_response(status)
            request.send_header("Content-Type", headers.get("content-type", "application/json"))
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload[: len(payload) // 2])
            request.wfile.flush()
            request.close_connection = True
            request.connection.close()
            return
        self._answer(request, status, payload, {"Content-Type": headers.get("content-type", "application/json")})

    def _forward(self, request, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=600)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
            connection.request(request.command, request.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    @staticmethod
    def _answer(request, status: int, payload: bytes, headers: dict[str, str]) -> None:
        request.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
