"""The OpenAI-compatible backend against a real `transformers serve` (the embedded model) on a free loopback port."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sprout.backends.base import Sampling
from sprout.backends.cache import CachedBackend
from sprout.backends.openai_compat import OpenAIBackend
from sprout.config import BackendConfig
from sprout.errors import UserError
from sprout.model_store import resolve_model

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    model_dir = resolve_model("embedded", log=lambda *_: None)
    port = free_port()
    cli = Path(sys.executable).parent / "transformers"  # the console script of transformers[serving]
    process = subprocess.Popen([str(cli), "serve", str(model_dir),
                                "--device", "cpu", "--port", str(port), "--host", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a start-up guard, not a timing
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited: {process.stderr.read()[-2000:]}")
            time.sleep(1)
    yield f"{url}/v1", str(model_dir)
    process.terminate()
    process.wait(timeout=30)


def test_chat_n_samples_stop_usage_and_order_under_concurrency(server):
    url, model = server
    backend = OpenAIBackend([url], model, max_concurrency=4)
    prompts = [[{"role": "user", "content": f"Count from {i} to {i + 5}, separated by commas."}] for i in range(6)]
    results = backend.generate(prompts, Sampling(temperature=0.7, max_tokens=24, n=2, seed=3, stop=("5",)))
    assert len(results) == 6 and all(len(samples) == 2 for samples in results)
    for samples in results:  # (n holds even if the server returns fewer choices)
        for sample in samples:
            assert "5" not in sample.text  # cut at the stop string
            assert sample.completion_tokens > 0
        assert samples[0].prompt_tokens > 0
    greedy = backend.generate(prompts, Sampling(temperature=0.0, max_tokens=12))
    alone = [backend.generate([p], Sampling(temperature=0.0, max_tokens=12))[0][0].text for p in prompts]
    assert [g[0].text for g in greedy] == alone  # concurrent results come back in input order


def test_cached_pool_over_a_dead_and_a_live_server(server, tmp_path):
    url, model = server
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused
    backend = CachedBackend(OpenAIBackend([dead, url], model, max_retries=0, set_aside_after=1), tmp_path / "c.db")
    prompts = [[{"role": "user", "content": "Name a fruit."}]] * 3
    first = backend.generate(prompts, Sampling(temperature=0.0, max_tokens=8), generator="test")
    assert all(row[0].text for row in first)
    assert backend.inner.endpoints[0].down_until > 0  # the dead one was set aside
    again = backend.generate(prompts, Sampling(temperature=0.0, max_tokens=8), generator="test")
    assert [r[0].text for r in again] == [r[0].text for r in first] and backend.usage.cache_hits == 3


def test_config_needs_a_base_url_and_a_set_key_variable(monkeypatch):
    with pytest.raises(ValueError, match="kind openai needs `base_url:`"):
        BackendConfig(kind="openai", model="m")
    assert BackendConfig(kind="openai", model="m", base_url=("http://a/v1", "http://b/v1")).base_urls == [
        "http://a/v1", "http://b/v1"]
    monkeypatch.delenv("SPROUT_TEST_KEY", raising=False)
    with pytest.raises(UserError, match="SPROUT_TEST_KEY is not set"):
        OpenAIBackend(["http://a/v1"], "m", api_key_env="SPROUT_TEST_KEY")
    dead = OpenAIBackend([f"http://127.0.0.1:{free_port()}/v1"], "m", max_retries=0, set_aside_after=1)
    with pytest.raises(UserError, match="no server answered .* Fix: start the server or correct backend.base_url"):
        dead.generate([[{"role": "user", "content": "hi"}]], Sampling(max_tokens=4))
    dead.close()



def test_sprout_synth_runs_on_the_openai_backend(server, tmp_path):
    import json

    from tests.test_cli import sprout

    url, model = server
    out = tmp_path / "run"
    result = sprout("synth", "--n", "2", "--set", f"out_dir={out}", "--set", f"cache={tmp_path / 'cache.sqlite'}",
                    "--set", "backend.kind=openai", "--set", f"backend.base_url={url}",
                    "--set", f"backend.model={model}", "--set", "synth.requests_per_batch=2")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert sorted(r["label"] for r in rows) == ["False", "True"]
    assert {r["lineage"]["model"] for r in rows} == {f"openai:{model}"}
