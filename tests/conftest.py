"""Shared fixtures. The scripted backend is for unit tests of prompt building and parsing only; end-to-end tests
use the real embedded model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sprout.backends.base import Backend, Completion, Message, Sampling

REPO = Path(__file__).resolve().parent.parent


# The test files that take minutes, longest first (measured under `make test`). Run first, they spread over the
# workers before the many short files fill the gaps; last, one of them would leave a worker alone at the end.
LONGEST_FIRST = ("test_openai_backend", "test_hosted_api", "test_kill_resume", "test_end_to_end", "test_train_cli",
                 "test_evol", "test_bad_input", "test_llama_engine", "test_trainer", "test_synth_cli",
                 "test_model_families", "test_own_data")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: each file keeps its own order


def pytest_configure(config):
    """Under pytest-xdist (`make test`: `-n auto --dist loadfile`: a file's tests on one worker, so a module fixture,
    a whole real-model run several tests read, runs once), each worker on a core of its own: the model code in it
    and the processes it starts (sprout runs, `transformers serve`) size their thread pools from the CPU affinity
    they inherit, so two workers never put four busy threads on two cores (llama.cpp's threads spin while they wait
    for each other)."""
    worker = getattr(config, "workerinput", {}).get("workerid")  # "gw0", "gw1", ... only inside a worker
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    workers = int(config.workerinput.get("workercount", 1))
    if len(cores) >= workers > 1:
        index = int(worker.removeprefix("gw"))
        share = len(cores) // workers
        os.sched_setaffinity(0, set(cores[index * share:(index + 1) * share]))
        os.environ["OMP_NUM_THREADS"] = str(share)  # torch here and in every process started from here


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


@pytest.fixture(scope="session")
def memo_server(server):
    """The session's server behind a proxy that asks it each distinct request once (tests/memo_proxy.py): for the
    tests that rerun the same whole `sprout data` run to check sprout's retries, rejects and resume."""
    from tests.memo_proxy import MemoProxy

    url, model = server
    with MemoProxy(url.removesuffix("/v1")) as proxy:
        yield f"{proxy.url}/v1", model


# A template set of our own, in a file of its own (not under prompts/flan/): three NLI templates, one of them
# inverted, over the shipped NLI rows. For the tests that ask a model for new wordings of every template, three
# templates prove what ten would at a third of the calls.
SMALL_NLI_TEMPLATES = """\
task: nli
kind: classification
data: seeds/flan/nli.jsonl
label_field: label
answer_choices: ["yes", "it is not possible to tell", "no"]
templates:
  - name: does_it_follow
    instruction: "{{ premise }}\\n\\nDoes it follow that \\"{{ hypothesis }}\\"?\\n\\n{{ options }}"
    output: "{{ answer }}"
  - name: two_sentences
    instruction: "Read the two sentences and say whether the second one is true if the first one is."
    input: "First: {{ premise }}\\nSecond: {{ hypothesis }}\\n\\n{{ options }}"
    output: "{{ answer }}"
  - name: write_a_hypothesis
    inverted: true
    instruction: "Write a sentence that {{ answer }} this one: \\"{{ premise }}\\""
    output: "{{ hypothesis }}"
    answer_choices: ["follows from", "neither follows from nor contradicts", "contradicts"]
"""


def small_nli_templates(folder: Path) -> Path:
    return write(folder / "my_nli.yaml", SMALL_NLI_TEMPLATES)
