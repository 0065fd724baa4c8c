"""Shared fixtures. The scripted backend is for unit tests of prompt building and parsing only; end-to-end tests
use the real embedded model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sprout.backends.base import Backend, Completion, Message, Sampling

REPO = Path(__file__).resolve().parent.parent


class ScriptedBackend(Backend):
    """Answers each conversation with `script(messages, sampling)`; records every batch it was sent."""

    def __init__(self, script: Callable[[list[Message], Sampling], str | Completion], model_id: str = "scripted"):
        self.script = script
        self.model_id = model_id
        self.batches: list[list[list[Message]]] = []

    def generate(self, batch, sampling):
        self.batches.append(batch)
        out = []
        for messages in batch:
            row = []
            for _ in range(sampling.n):
                reply = self.script(messages, sampling)
                if isinstance(reply, str):
                    reply = Completion(reply, "stop", prompt_tokens=10, completion_tokens=len(reply.split()))
                row.append(reply)
            out.append(row)
        return out


@pytest.fixture
def scripted():
    return ScriptedBackend


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
