"""The OpenAI-compatible backend against a real `transformers serve` (the embedded model) on a free loopback port."""

import sqlite3

import pytest

from sprout.backends.base import Sampling
from sprout.backends.cache import CachedBackend
from sprout.backends.config import OpenAIBackendConfig
from sprout.backends.openai_compat import OpenAIBackend
from sprout.core.errors import UserError
from tests.fault_proxy import FaultPlan, FaultProxy
from tests.serve import free_port, start_server, stop_server

pytestmark = pytest.mark.slow


def test_chat_n_samples_stop_usage_and_order_under_concurrency(server):
    url, model = server
    backend = OpenAIBackend([url], model, max_concurrency=4)
    # Four prompts fill the four slots: as many in flight at once as six would be (two fewer cost 9 s of decoding).
    prompts = [[{"role": "user", "content": f"Count from {i} to {i + 5}, separated by commas."}] for i in range(4)]
    results = backend.generate(prompts, Sampling(temperature=0.7, max_tokens=24, n=2, seed=3, stop=("5",)))
    assert len(results) == 4 and all(len(samples) == 2 for samples in results)
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
        OpenAIBackendConfig(kind="openai", model="m")
    assert OpenAIBackendConfig(kind="openai", model="m", base_url=("http://a/v1", "http://b/v1")).base_urls == [
        "http://a/v1", "http://b/v1"]
    monkeypatch.delenv("SPROUT_TEST_KEY", raising=False)
    with pytest.raises(UserError, match="SPROUT_TEST_KEY is not set"):
        OpenAIBackend(["http://a/v1"], "m", api_key_env="SPROUT_TEST_KEY")
    dead = OpenAIBackend([f"http://127.0.0.1:{free_port()}/v1"], "m", max_retries=0, set_aside_after=1)
    (reply,), = dead.generate([[{"role": "user", "content": "hi"}]], Sampling(max_tokens=4, n=1))
    assert reply.failed and reply.error.startswith("APIConnectionError: no usable answer from http://127.0.0.1:")
    dead.close()


def test_completions_endpoint_sends_the_raw_prompt(server):
    url, model = server
    backend = OpenAIBackend([url], model, max_concurrency=3)
    prompts = [f"Numbers from {i}:\n1. {i}\n2. {i + 1}\n3." for i in range(4)]
    results = backend.generate(prompts, Sampling(temperature=0.0, max_tokens=16, n=2, stop=("\n5.",)))
    assert len(results) == 4 and all(len(samples) == 2 for samples in results)
    for samples in results:
        assert samples[0].text and "\n5." not in samples[0].text and "<|im_start|>" not in samples[0].text
        assert samples[0].prompt_tokens > 0 and samples[0].completion_tokens > 0
    alone = [backend.generate([p], Sampling(temperature=0.0, max_tokens=16, stop=("\n5.",)))[0][0].text
             for p in prompts]
    assert [row[0].text for row in results] == alone  # in input order under concurrency
    chat = backend.generate([[{"role": "user", "content": prompts[0]}]], Sampling(temperature=0.0, max_tokens=16))
    assert chat[0][0].text != alone[0]  # the chat endpoint wraps the prompt in a turn; completions does not
    backend.close()


def test_a_prefill_is_continued_where_the_server_allows_it_else_sent_as_raw_text(server):
    url, model = server
    prefill = [{"role": "user", "content": "List four colours, numbered."}, {"role": "assistant", "content": "1."}]
    with FaultProxy(url.removesuffix("/v1"), FaultPlan()) as proxy:
        backend = OpenAIBackend([f"{proxy.url}/v1"], model)
        first = backend.generate([prefill], Sampling(temperature=0.0, max_tokens=16))[0][0]
        again = backend.generate([prefill], Sampling(temperature=0.0, max_tokens=16))[0][0]
        backend.close()
    # vLLM's chat extras are asked for first; transformers serve refuses them (422), so the conversation goes to
    # the completions endpoint as raw text, and the server is remembered as one that does not continue.
    assert [(e.path, "continue_final_message" in e.fields) for e in proxy.log] == [
        ("/v1/chat/completions", True), ("/v1/completions", False), ("/v1/completions", False)]
    assert backend.endpoints[0].prefill_route == "completions"
    assert [first.route, again.route] == ["completions", "completions"]
    assert first.text == again.text and first.text and not first.text.startswith("1.")  # it went on after "1."
    # Found out once and said once, with what the server answered.
    assert len(backend.notes) == 1 and "422" in backend.notes[0] and "/v1/completions" in backend.notes[0]


def test_every_kind_of_fault_is_retried_and_retry_after_is_honoured(server):
    url, model = server
    root = url.removesuffix("/v1")
    prompts = [[{"role": "user", "content": f"Give one word that rhymes with {w}."}]
               for w in ("cat", "sun", "tree", "light", "rain", "stone", "bell")]
    sampling = Sampling(temperature=0.0, max_tokens=8)
    direct = OpenAIBackend([url], model)
    clean = direct.generate(prompts, sampling)
    direct.close()
    plan = FaultPlan(first=["429", "500", "drop", "truncate", "garbage", "stall"], retry_after=1.5, stall_for=12)
    with FaultProxy(root, plan) as proxy:
        # The first request meets five faults in a row: the client's own 5 retries absorb four of them. The timeout
        # leaves a busy machine's server room for an 8-token answer, and the stall outlasts it.
        backend = OpenAIBackend([f"{proxy.url}/v1"], model, max_concurrency=1, timeout=8, max_retries=5)
        faulty = backend.generate(prompts, sampling)
        backend.close()
    assert [r[0].text for r in faulty] == [r[0].text for r in clean]  # nothing lost, nothing changed
    assert proxy.faults() == {"429": 1, "500": 1, "drop": 1, "truncate": 1, "garbage": 1, "stall": 1, "ok": 7}
    after_429 = proxy.log[1].at - proxy.log[0].at
    assert after_429 >= 1.5 * 0.95  # the client waited as long as Retry-After asked before trying again
    assert backend.failures == {"JSONDecodeError": 1}  # the one fault the client does not retry by itself


def test_a_request_out_of_retries_fails_alone_and_too_many_failures_stop_the_run(server, tmp_path):
    url, model = server
    with FaultProxy(url.removesuffix("/v1"), FaultPlan(rate=1.0, kinds=("500",))) as proxy:
        inner = OpenAIBackend([f"{proxy.url}/v1"], model, max_retries=1, set_aside_after=2, backoff_base=0.01)
        backend = CachedBackend(inner, tmp_path / "c.sqlite", max_failure_rate=0.2, min_failures=3)
        (reply,), = backend.generate([[{"role": "user", "content": "hi"}]], Sampling(max_tokens=4), generator="g")
        assert reply.failed and "InternalServerError: no usable answer" in reply.error
        assert "after 2 tries" in reply.error
        assert backend.usage.failed == 1 and backend.usage.failures == {"InternalServerError": 1}
        assert backend._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0  # a failure is not cached
        with pytest.raises(UserError, match=r"3 of 3 requests failed after retries \(InternalServerError 3\).*"
                                            r"a rerun resumes from the cache"):
            backend.generate([[{"role": "user", "content": f"hi {i}"}] for i in range(2)], Sampling(max_tokens=4))
        backend.close()
    assert proxy.faults() == {"500": 12}  # 3 requests x 2 tries x (1 + 1 client retry)


def test_pool_spreads_over_two_real_servers_and_survives_one_being_stopped(server, model_dir, tmp_path):
    url, model = server
    second, second_url = start_server(model_dir)
    try:
        with FaultProxy(url.removesuffix("/v1"), FaultPlan()) as a, FaultProxy(second_url, FaultPlan()) as b:
            backend = OpenAIBackend([f"{a.url}/v1", f"{b.url}/v1"], model, max_concurrency=4, max_retries=1,
                                    set_aside_after=1, backoff_base=0.01)
            prompts = [[{"role": "user", "content": f"Say the number {i}."}] for i in range(8)]
            sampling = Sampling(temperature=0.0, max_tokens=6)
            first = backend.generate(prompts, sampling)
            served = (len(a.log), len(b.log))
            assert sum(served) == 8 and min(served) >= 2, served  # least outstanding: both servers got work
            stop_server(second)
            again = backend.generate(prompts, sampling)
            assert [r[0].text for r in again] == [r[0].text for r in first]
            assert backend.endpoints[1].down_until > 0 and len(a.log) - served[0] == 8  # B set aside, A did all
            backend.close()
    finally:
        if second.poll() is None:
            stop_server(second)


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


# Small and short: `transformers serve` answers one request at a time, so every token here is wall time in CI.
# seed 7: a run that finds its one task in 4 batches (14 calls; the default seed's took 5 and 16, 67 s against 52 s).
SMALL_DATA = ["--set", "seed=7",
              "--set", "generators.self_instruct.target=1", "--set", "generators.self_instruct.requests_per_batch=2",
              "--set", "generators.self_instruct.tasks_per_batch=2",
              "--set", "generators.self_instruct.list_stops_at=11",  # proposals end after items 9 and 10
              "--set", "generators.self_instruct.sampling.max_tokens=96",  # two items fit; a longer reply is cut
              "--set", "generators.self_instruct.instance_sampling.max_tokens=64",
              "--set", "generators.evol_instruct.rounds=1", "--set", "generators.evol_instruct.per_round=1",
              "--set", "generators.evol_instruct.sampling.max_tokens=64",
              "--set", "generators.evol_instruct.response_sampling.max_tokens=64",
              "--set", "generators.pair_synthesis=[{task: seeds/tasks/political_promises.yaml, n: 2, "
                       "requests_per_batch: 2, max_batches: 6}]", "--set", "generators.flan=null"]


def data_run(base, url, model, *extra):
    from tests.test_cli import sprout

    return sprout("data", "--set", f"out_dir={base / 'out'}", "--set", f"cache={base / 'cache.sqlite'}",
                  "--set", "backend.kind=openai", "--set", f"backend.base_url={url}", "--set", f"backend.model={model}",
                  "--set", "backend.max_concurrency=4", *SMALL_DATA, *extra)


def outputs(base) -> dict:
    return {name: (base / "out" / name).read_bytes() for name in ("examples.jsonl", "rejected.jsonl")}


@pytest.fixture(scope="module")
def clean_data_run(memo_server, tmp_path_factory):
    url, model = memo_server
    base = tmp_path_factory.mktemp("clean")
    result = data_run(base, url, model)
    assert result.returncode == 0, result.stderr[-3000:]
    return base


def test_sprout_data_runs_unchanged_on_the_openai_backend(memo_server, clean_data_run):
    """The default config's model generators (Self-Instruct with its prefilled list, Evol-Instruct with its judge,
    pair synthesis), small sizes, over a real server (FLAN calls no model; it is off here)."""
    import json

    url, model = memo_server
    out = clean_data_run / "out"
    report = json.loads((out / "report.json").read_text())
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    by_generator = {g: [r for r in rows if r["lineage"]["generator"] == g] for g in
                    ("self_instruct", "evol_instruct", "pair_synthesis")}
    assert report["new_tasks"] == 1 and by_generator["self_instruct"] and len(by_generator["pair_synthesis"]) == 2
    assert {r["lineage"]["model"] for r in rows if r["lineage"]["generator"] != "flan"} == {f"openai:{model}"}
    assert report["usage"]["calls"] > 0 and set(report["usage"]["by_model"]) == {f"openai:{model}"}
    assert report["usage"]["failed"] == 0 and report["work"]["evol_instruct"] == 1


def test_a_whole_run_through_ten_percent_faults_retries_and_ends_identical(memo_server, clean_data_run, tmp_path):
    url, model = memo_server
    # Stalls are left to the test above: a whole run's long answers would need a long timeout to tell them apart.
    kinds = ("429", "500", "drop", "truncate", "garbage")
    plan = FaultPlan(first=list(kinds), rate=0.1, seed=3, retry_after=1, kinds=kinds)  # each kind at least once
    with FaultProxy(url.removesuffix("/v1"), plan) as proxy:
        result = data_run(tmp_path, f"{proxy.url}/v1", model)
    assert result.returncode == 0, result.stderr[-3000:]
    injected = {k: v for k, v in proxy.faults().items() if k != "ok"}
    assert set(injected) == set(kinds) and sum(injected.values()) >= 5, proxy.faults()  # faults were injected...
    assert outputs(tmp_path) == outputs(clean_data_run)  # ...and retried away: the same files as a clean run


def test_requests_failing_past_the_retry_budget_are_recorded_and_a_rerun_asks_again(memo_server, clean_data_run,
                                                                                     tmp_path):
    import json

    url, model = memo_server
    # (a small run: a few failures are a large share, so the stop threshold is raised; the next test covers it)
    no_retries = ["--set", "backend.max_retries=0", "--set", "backend.set_aside_after=1",
                  "--set", "backend.set_aside_for=0", "--set", "backend.max_failure_rate=0.6"]
    # Two requests fail for good, two ways: pair synthesis's first two (its first batch), picked by what they ask,
    # not by arrival order (concurrency varies that). Failures change a run's path: a lost Self-Instruct list
    # prompt means more list batches (~150 s of extra generation under this seed); a lost pair, another pair call.
    plan = FaultPlan(first=["500", "drop"], only_if="You write realistic inputs")
    with FaultProxy(url.removesuffix("/v1"), plan) as proxy:
        faulty = data_run(tmp_path, f"{proxy.url}/v1", model, *no_retries)
        injected = sum(v for k, v in proxy.faults().items() if k != "ok")
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        first_rejects = (tmp_path / "out" / "rejected.jsonl").read_text()
        plan.rate = 0.0  # the server is fine now; the rerun keeps the same config (and URL)
        rerun = data_run(tmp_path, f"{proxy.url}/v1", model, *no_retries)
    assert faulty.returncode == 0, faulty.stderr[-3000:]  # under backend.max_failure_rate
    assert '{"rule": "backend_error", "reason": "' in first_rejects and "no usable answer" in first_rejects
    failed = report["usage"]["failed"]
    assert failed == injected == 2 and sum(report["usage"]["failures"].values()) == failed
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert outputs(tmp_path) == outputs(clean_data_run)  # the failed requests were asked again; nothing else
    again = json.loads((tmp_path / "out" / "report.json").read_text())["usage"]
    assert again["failed"] == 0 and again["calls"] > 0  # the failed requests (and what follows from them)...
    cache = sqlite3.connect(tmp_path / "cache.sqlite")
    assert cache.execute("SELECT MAX(generations) FROM responses").fetchone()[0] == 1  # ...and no answer twice


def test_a_dead_backend_stops_the_run_with_a_clear_message_and_it_resumes_later(memo_server, clean_data_run,
                                                                                tmp_path):
    url, model = memo_server
    plan = FaultPlan(rate=1.0, kinds=("500", "drop"))
    with FaultProxy(url.removesuffix("/v1"), plan) as proxy:
        # No client retries: sprout's own tries and the run's stop rule are what is tested here (the client's
        # retries and their waits are the fault test's; here they cost ~5 s of sleeping and prove nothing more).
        dead = data_run(tmp_path, f"{proxy.url}/v1", model, "--set", "backend.max_retries=0")
        plan.rate = 0.0  # the server is back; the same config (and URL) resumes
        resumed = data_run(tmp_path, f"{proxy.url}/v1", model, "--set", "backend.max_retries=0")
    assert dead.returncode == 2 and "Traceback" not in dead.stderr, dead.stderr[-3000:]
    assert "requests failed after retries" in dead.stderr and "a rerun resumes from the cache" in dead.stderr
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert outputs(tmp_path) == outputs(clean_data_run)


def test_the_api_key_reaches_the_server_and_nothing_else(memo_server, tmp_path):
    """A sentinel key in the named variable: the server gets it; no output file, report, cache row, lineage field
    or log line (debug logging on) holds it."""
    import uuid

    from tests.test_cli import sprout

    url, model = memo_server
    sentinel = f"sk-sentinel-{uuid.uuid4().hex}"
    with FaultProxy(url.removesuffix("/v1"), FaultPlan()) as proxy:
        result = sprout("--verbose", "data", "--set", f"out_dir={tmp_path / 'out'}",
                        "--set", f"cache={tmp_path / 'cache.sqlite'}", "--set", "backend.kind=openai",
                        "--set", f"backend.base_url={proxy.url}/v1", "--set", f"backend.model={model}",
                        "--set", "backend.api_key_env=SPROUT_SENTINEL_KEY", *SMALL_DATA,
                        env={"SPROUT_SENTINEL_KEY": sentinel})
    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.log and all(e.authorization == f"Bearer {sentinel}" for e in proxy.log if e.path.startswith("/v1"))
    assert sentinel not in result.stdout and sentinel not in result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"examples.jsonl", "rejected.jsonl", "report.json", "report.html",
                                         "report.md", "config.yaml", "cache.sqlite"}
    for path in written:
        assert sentinel.encode() not in path.read_bytes(), path
    assert "SPROUT_SENTINEL_KEY" in (tmp_path / "out" / "config.yaml").read_text()  # the variable's name only
