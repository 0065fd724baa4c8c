"""A loopback HTTP proxy that injects faults in front of a real server (here: `transformers serve`).

Each request takes the next fault from a plan (a list, then a seeded rate): `ok` forwards it; `429` answers Too Many
Requests with Retry-After; `500` an internal error; `drop` closes the connection without an answer (what a refused
or reset connection looks like to the client); `truncate` forwards, then cuts the body in half and closes;
`garbage` answers 200 with a body that is not JSON; `stall` holds the request past the client's timeout. Every
request is logged with its time, path and fault, so tests can check what the client did about each one.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackProxy

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
    # With `only_if`, `first` applies to the first requests whose body contains it (a request picked by what it
    # asks, not by arrival order, which concurrency makes vary); the others pass.
    only_if: str | None = None
    rate: float = 0.0  # after those: each request faults with this probability (a fault drawn from `kinds`)
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    retry_after: float = 1.0
    stall_for: float = 5.0

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def next(self, body: bytes = b"") -> str:
        with self._lock:
            if self.first and (self.only_if is None or self.only_if.encode() in body):
                return self.first.pop(0)
            if self.only_if is not None:
                return "ok"
            return self._rng.choice(self.kinds) if self._rng.random() < self.rate else "ok"


class FaultProxy(LoopbackProxy):
    def __init__(self, upstream: str, plan: FaultPlan):
        super().__init__(upstream)
        self.plan, self.log = plan, []

    def faults(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.log:
            counts[entry.fault] = counts.get(entry.fault, 0) + 1
        return counts

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        fault = self.plan.next(body) if request.path.startswith("/v1/") else "ok"
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
            self.answer(request, int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode(),
                         headers)
            return
        if fault == "garbage":
            self.answer(request, 200, b"<html>this is not JSON", {})
            return
        if fault == "stall":
            time.sleep(self.plan.stall_for)
        status, headers, payload = self.forward(request, body)
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
        self.answer(request, status, payload, {"Content-Type": headers.get("content-type", "application/json")})
