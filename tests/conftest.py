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


def save_tiny_llama(path: Path, tokenizer, hidden_size: int = 64, intermediate_size: int = 128) -> Path:
    """A 2-layer random Llama with the given tokenizer (and its chat template) saved to `path`: trainer tests run in
    seconds on it. Seeded, so every test module gets the same weights for the same sizes."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from sprout.backends.model_store import resolve_model

    return resolve_model("embedded", log=lambda *_: None)


@pytest.fixture(scope="session")
def server(model_dir):
    """One real `transformers serve` for the session (the OpenAI-compatible and hosted-API tests share it)."""
    from tests.serve import start_server, stop_server

    process, url = start_server(model_dir)
    yield f"{url}/v1", str(model_dir)
    stop_server(process)
