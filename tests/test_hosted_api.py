"""sprout against a hosted chat-only API: a loopback proxy that refuses what OpenAI refuses for chat models (404 on
/v1/completions, 400 on any body field outside the documented chat-completions parameters; as a reasoning model,
400 on max_tokens, a temperature other than 1, top_p and the penalties), in front of a real `transformers serve` of
the embedded model. Shares the session's server with test_openai_backend.py."""

import json

import pytest

from sprout.backends.base import Sampling
from sprout.backends.openai_compat import BackendRefused, OpenAIBackend
from sprout.core.prompts import load_prompt
from tests.conftest import small_nli_templates
from tests.hosted_api_proxy import DOCUMENTED_CHAT_FIELDS, HostedChatProxy
from tests.test_cli import sprout

pytestmark = pytest.mark.slow

TASKS = ["Name three rivers in Europe.", "Rewrite the sentence in the passive voice.",
         "Explain what a leap year is.", "Classify the review as positive or negative."]


def new_tasks_prompt(tasks=TASKS):
    return load_prompt("self_instruct/new_tasks").build("chat", tasks=tasks, up_to=6)


def backend(url, model, notes, **options):
    return OpenAIBackend([f"{url}/v1"], model, max_retries=0, log=notes.append, **options)


def test_a_prefill_finds_the_chat_native_form_once_and_says_so_once(server):
    upstream, model = server
    notes = []
    with HostedChatProxy(upstream.removesuffix("/v1"), model) as proxy:
        client = backend(proxy.url, model, notes, max_concurrency=1)
        try:
            prompts = [new_tasks_prompt(), new_tasks_prompt(TASKS[1:]), new_tasks_prompt(TASKS[:3])]
            results = client.generate(prompts, Sampling(max_tokens=24, temperature=0.7, seed=3))
        finally:
            client.close()
    # The probe: vLLM's field (400, the hosted words), then the completions endpoint (404), then the chat form.
    first = [(e.path, e.status) for e in proxy.log[:3]]
    assert first == [("/v1/chat/completions", 400), ("/v1/completions", 404), ("/v1/chat/completions", 200)]
    assert b"Unrecognized request argument supplied: add_generation_prompt, continue_final_message" in \
        proxy.log[0].answer
    # After that, one request per prompt, every field a documented one, and no prefill in the messages.
    assert [(e.path, e.status) for e in proxy.log[3:]] == [("/v1/chat/completions", 200)] * 2
    for entry in proxy.log[2:]:
        assert set(entry.fields) <= DOCUMENTED_CHAT_FIELDS
        assert entry.body["messages"][-1]["role"] == "user"
        assert "Write tasks" in entry.body["messages"][-1]["content"]
    assert [c.route for (c,) in results] == ["chat-native"] * 3 and all(c.text for (c,) in results)
    assert len(notes) == 1 and "chat-native" in notes[0] and "404" in notes[0] and "backend.prefill: chat" in notes[0]
    assert notes == [f"backend: {note}" for note in client.notes]  # the log line, and the note for the summary


def test_a_reasoning_model_gets_max_completion_tokens_and_sampling_it_refuses_is_said_once(server):
    upstream, model = server
    notes = []
    with HostedChatProxy(upstream.removesuffix("/v1"), model, reasoning=True) as proxy:
        client = backend(proxy.url, model, notes, max_concurrency=1)
        try:
            conversations = [[{"role": "user", "content": f"Say hello to {name}."}] for name in ("Ann", "Bo", "Cy")]
            results = client.generate(conversations, Sampling(max_tokens=12, temperature=0.7, top_p=0.9, seed=1))
        finally:
            client.close()
    refusals = [json.loads(e.answer)["error"]["param"] for e in proxy.log if e.status == 400]
    assert refusals == ["max_tokens", "temperature", "top_p"]  # each refused once, then adapted for good
    assert [e.status for e in proxy.log[-3:]] == [200, 200, 200]
    sent = proxy.log[-1].body
    assert sent["max_completion_tokens"] == 12 and not {"max_tokens", "temperature", "top_p"} & set(sent)
    assert len(notes) == 3
    assert "max_completion_tokens" in notes[0]
    assert any("temperature=0.7" in n and "server's default" in n for n in notes)
    assert any("top_p=0.9" in n for n in notes)
    assert all(c.text for (c,) in results)


@pytest.mark.parametrize("case, status, words, fix", [
    ("model", 404, "does not exist", "backend.model"),
    ("key", 401, "Incorrect API key", "api_key_env"),
])
def test_a_request_refused_for_good_stops_at_once_with_the_status_the_words_and_the_fix(server, monkeypatch, case,
                                                                                         status, words, fix):
    upstream, model = server
    monkeypatch.setenv("SPROUT_TEST_KEY", "sk-right" if case == "model" else "sk-wrong-secret")
    with HostedChatProxy(upstream.removesuffix("/v1"), model, api_key="sk-right") as proxy:
        client = OpenAIBackend([f"{proxy.url}/v1"], "no-such-model" if case == "model" else model,
                               api_key_env="SPROUT_TEST_KEY", max_retries=5, log=lambda _: None)
        try:
            with pytest.raises(BackendRefused) as caught:
                client.generate([[{"role": "user", "content": "Hi"}]] * 4, Sampling(max_tokens=4))
        finally:
            client.close()
    message = str(caught.value)
    assert f"HTTP {status}" in message and words in message and fix in message
    assert "sk-wrong-secret" not in message
    # No pile of retries: the concurrent batch's requests, each sent once, nothing after the refusal.
    assert len(proxy.log) <= 4 and {e.status for e in proxy.log} == {status}


# Small and short: `transformers serve` answers one request at a time, so every token here is wall time in CI.
def chat_only(proxy_url, model, tmp_path):
    return ["--set", f"cache={tmp_path / 'cache.sqlite'}", "--set", "backend.kind=openai",
            "--set", f"backend.base_url={proxy_url}/v1", "--set", f"backend.model={model}",
            "--set", "backend.max_concurrency=4"]


# seed 7: a run that finds its one task in 4 batches (15 calls; the default seed's took 6 and 27, 106 s against 59 s).
SMALL_DATA = ["--set", "seed=7",
              "--set", "generators.self_instruct.target=1", "--set", "generators.self_instruct.requests_per_batch=4",
              "--set", "generators.self_instruct.tasks_per_batch=2",
              "--set", "generators.self_instruct.list_stops_at=11",
              "--set", "generators.self_instruct.sampling.max_tokens=96",
              "--set", "generators.self_instruct.instance_sampling.max_tokens=64",
              "--set", "generators.evol_instruct.rounds=1", "--set", "generators.evol_instruct.per_round=1",
              "--set", "generators.evol_instruct.sampling.max_tokens=48",
              "--set", "generators.evol_instruct.response_sampling.max_tokens=48",
              "--set", "generators.pair_synthesis=[{task: seeds/tasks/political_promises.yaml, n: 2, "
                       "requests_per_batch: 2, max_batches: 6}]", "--set", "generators.flan=null"]


def test_sprout_data_runs_to_completion_through_a_chat_only_api(server, tmp_path):
    upstream, model = server
    out = tmp_path / "out"
    with HostedChatProxy(upstream.removesuffix("/v1"), model) as proxy:
        result = sprout("data", "--set", f"out_dir={out}", *chat_only(proxy.url, model, tmp_path), *SMALL_DATA)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    generators = {r["lineage"]["generator"] for r in rows}
    assert {"self_instruct", "pair_synthesis"} <= generators and report["new_tasks"] == 1
    assert report["work"]["evol_instruct"] == 1 and report["usage"]["failed"] == 0
    routes = report["usage"]["prefill_routes"]
    assert routes.get("chat-native", 0) > 0 and set(routes) == {"chat-native"}
    # Found out once, said once: in the log and in the report.
    assert result.stderr.count("does not continue a prefill") + result.stdout.count("does not continue a prefill") == 1
    assert len([n for n in report["usage"]["notes"] if "does not continue a prefill" in n]) == 1
    assert all(set(e.fields) <= DOCUMENTED_CHAT_FIELDS for e in proxy.log if e.status == 200)
    assert sum(1 for e in proxy.log if e.path == "/v1/completions") == 1  # one probe (the others waited for it)


def test_sprout_synth_evolve_and_templates_grow_run_through_a_chat_only_api(server, tmp_path):
    upstream, model = server
    source = tmp_path / "eval.jsonl"
    rows = TASKS[:2]  # two rows show what four would: each attempt one line, every request a documented one
    source.write_text("".join(json.dumps({"instruction": q, "input": "", "output": "-"}) + "\n" for q in rows))
    with HostedChatProxy(upstream.removesuffix("/v1"), model) as proxy:
        options = chat_only(proxy.url, model, tmp_path)
        synth = sprout("synth", "--n", "2", "--set", f"out_dir={tmp_path / 'synth'}", *options,
                       "--set", "synth.requests_per_batch=2")
        evolve = sprout("evolve", "--input", str(source), "--rounds", "1", "--out", str(tmp_path / "evolved"),
                        *options, "--set", "evol_instruct.sampling.max_tokens=48",
                        "--set", "evol_instruct.response_sampling.max_tokens=48")
        grow = sprout("templates", "grow", "--task", str(small_nli_templates(tmp_path)), "--variants", "1",
                      *options, "--set", "sampling.max_tokens=48")  # three short wordings, one per template
    for result in (synth, evolve, grow):
        assert result.returncode == 0, result.stderr[-3000:]
    evolved = [json.loads(line) for name in ("examples.jsonl", "rejected.jsonl")
               for line in (tmp_path / "evolved" / name).read_text().splitlines()]
    assert len(evolved) == len(rows)  # one line per attempt
    assert all(e.status in (200, 400, 404) for e in proxy.log)
    assert all(set(e.fields) <= DOCUMENTED_CHAT_FIELDS for e in proxy.log if e.status == 200)


def test_sprout_data_with_a_wrong_key_stops_with_one_message_and_exit_2(server, tmp_path):
    upstream, model = server
    out = tmp_path / "out"
    with HostedChatProxy(upstream.removesuffix("/v1"), model, api_key="sk-right") as proxy:
        result = sprout("data", "--set", f"out_dir={out}", *chat_only(proxy.url, model, tmp_path), *SMALL_DATA,
                        "--set", "backend.api_key_env=SPROUT_TEST_KEY", env={"SPROUT_TEST_KEY": "sk-wrong-secret"})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "HTTP 401" in result.stderr and "Incorrect API key" in result.stderr and "Traceback" not in result.stderr
    assert "sk-wrong-secret" not in result.stderr + result.stdout
    assert len(proxy.log) == 1  # the first request found the refusal; the others waiting on it were never sent
