import sqlite3

import pytest

from sprout.backends.base import Completion, Sampling
from sprout.backends.cache import INSERT, CachedBackend, cache_key
from sprout.core.errors import UserError
from sprout.io.jsonl import ResumableJsonl
from tests.conftest import ScriptedBackend

MESSAGES = [{"role": "user", "content": "hi"}]


def test_cache_key_covers_model_messages_sampling_and_sample_index():
    base = cache_key("m", MESSAGES, Sampling(), 0)
    assert base == cache_key("m", [dict(MESSAGES[0])], Sampling(), 0)
    assert base != cache_key("m2", MESSAGES, Sampling(), 0)
    assert base != cache_key("m", [{"role": "user", "content": "hi!"}], Sampling(), 0)
    assert base != cache_key("m", MESSAGES, Sampling(temperature=0.1), 0)
    assert base != cache_key("m", MESSAGES, Sampling(seed=1), 0)
    assert base != cache_key("m", MESSAGES, Sampling(stop=("x",)), 0)
    assert base != cache_key("m", MESSAGES, Sampling(), 1)
    assert base == cache_key("m", MESSAGES, Sampling(n=3), 0)  # n is not part of a sample's identity


def test_second_call_is_served_from_cache_with_token_counts(tmp_path, scripted):
    counter = iter(range(100))
    backend = scripted(lambda m, s: Completion(f"reply {next(counter)}", "stop", 7, 3))
    cached = CachedBackend(backend, tmp_path / "c.sqlite")
    batch = [MESSAGES, [{"role": "user", "content": "other"}]]
    first = cached.generate(batch, Sampling(n=2), generator="g")
    assert [[c.text for c in row] for row in first] == [["reply 0", "reply 1"], ["reply 2", "reply 3"]]
    assert cached.usage.calls == 4 and cached.usage.completion_tokens == 12
    cached.close()
    again = CachedBackend(scripted(lambda m, s: pytest.fail("the cache should answer")), tmp_path / "c.sqlite")
    second = again.generate(batch, Sampling(n=2), generator="g")
    assert [[c.text for c in row] for row in second] == [["reply 0", "reply 1"], ["reply 2", "reply 3"]]
    assert all(c.cached for row in second for c in row)
    assert again.usage.calls == 0 and again.usage.cache_hits == 4 and again.usage.cached_completion_tokens == 12
    fresh, cached = cached.usage.by_model["scripted"]["g"], again.usage.by_model["scripted"]["g"]
    assert (fresh["calls"], fresh["prompt_tokens"], fresh["completion_tokens"], fresh["cache_hits"]) == (4, 28, 12, 0)
    assert fresh["seconds"] > 0 and cached["seconds"] == 0  # only model calls take model time
    assert (cached["cache_hits"], cached["cached_prompt_tokens"], cached["prompt_tokens"]) == (4, 28, 0)
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_failed_batch_caches_nothing(tmp_path, scripted):
    def explode(messages, sampling):
        if messages[0]["content"] == "boom":
            raise RuntimeError("backend died")
        return "fine"

    cached = CachedBackend(scripted(explode), tmp_path / "c.sqlite")
    with pytest.raises(RuntimeError):
        cached.generate([MESSAGES, [{"role": "user", "content": "boom"}]], Sampling())
    assert cached.lookup(cache_key("scripted", MESSAGES, Sampling(), 0)) is None


def test_jsonl_cuts_a_torn_line_and_replays_without_doubling(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3')  # killed mid-write
    writer = ResumableJsonl(path)
    writer.write(['{"a": 1}', '{"a": 2}'])  # the replay reproduces what is there: nothing appended
    writer.write(['{"a": 3}', '{"a": 4}'])
    writer.close()
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 3}\n{"a": 4}\n'


def test_jsonl_refuses_a_replay_that_differs(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"a": 1}\n')
    writer = ResumableJsonl(path)
    with pytest.raises(UserError, match="--force"):
        writer.write(['{"a": 2}'])
    writer.close()


def test_a_backend_error_reject_is_found_by_its_rule_wherever_the_key_stands(tmp_path):
    import json

    from sprout.core.records import Lineage, Record, Rejection, has_rejection

    record = Record(instruction="Say hi.", lineage=Lineage(generator="self_instruct"))
    written = Rejection(rule="backend_error", reason="HTTP 500", record=record).to_json()
    reordered = json.dumps({"reason": "HTTP 500", "record": record.model_dump(mode="json"), "rule": "backend_error"},
                           indent=None, separators=(",", ":"))  # rule last, no spaces: no byte prefix to go by
    mentioned = Rejection(rule="too_short", reason='"rule": "backend_error"', record=record).to_json()
    files = {"writer": written, "reordered": reordered, "mentioned": mentioned, "none": ""}
    for name, line in files.items():
        (tmp_path / f"{name}.jsonl").write_text(f"{line}\n" if line else "", encoding="utf-8")
    assert has_rejection(tmp_path / "writer.jsonl", "backend_error")
    assert has_rejection(tmp_path / "reordered.jsonl", "backend_error")
    assert not has_rejection(tmp_path / "mentioned.jsonl", "backend_error")  # only a reason that quotes it
    assert not has_rejection(tmp_path / "none.jsonl", "backend_error")
    assert not has_rejection(tmp_path / "missing.jsonl", "backend_error")
    # A torn last line (a kill mid-write) is no reject, and does not hide the whole lines before it.
    torn = tmp_path / "torn.jsonl"
    torn.write_text(f"{mentioned}\n{written[:30]}", encoding="utf-8")
    assert not has_rejection(torn, "backend_error")
    torn.write_text(f"{reordered}\n{mentioned[:30]}", encoding="utf-8")
    assert has_rejection(torn, "backend_error")


def test_cost_is_fresh_tokens_at_the_models_price_and_the_cache_saving_is_shown_apart():
    from dataclasses import asdict

    from sprout.backends.base import Usage
    from sprout.backends.pricing import priced
    from sprout.config.base import PriceConfig

    usage = Usage()
    for model in ("openai:big", "transformers:local"):
        usage.add(Completion("x", "stop", 1_000_000, 500_000), model, "self_instruct")
        usage.add(Completion("x", "stop", 2_000_000, 0, cached=True), model, "self_instruct")
    report = priced(asdict(usage), {"openai:big": PriceConfig(input_per_million=0.5, output_per_million=2.0),
                                    "transformers:local": None})
    assert report["by_model"]["openai:big"]["self_instruct"]["cost"] == 0.5 + 1.0
    assert "cost" not in report["by_model"]["transformers:local"]["self_instruct"]
    assert report["prices"]["openai:big"]["input_per_million"] == 0.5
    assert report["cost"] == {"total": 1.5, "saved_by_cache": 1.0, "currency": "USD",
                              "unpriced_models": ["transformers:local"]}
    assert "cost" not in priced(asdict(usage), {"openai:big": None})  # no price anywhere: no cost at all


def test_one_cost_formula_reads_a_price_config_and_its_json_form_alike():
    from sprout.backends.pricing import cost
    from sprout.config.base import PriceConfig

    price = PriceConfig(input_per_million=0.5, output_per_million=2.0)
    assert cost(1_000_000, 500_000, price.model_dump()) == 0.5 + 1.0
    assert cost(3, 1, {"input_per_million": 1e6, "output_per_million": 2e6}) == 5.0  # as report.json keeps prices


def test_each_answer_counts_its_generations_and_old_caches_are_migrated(tmp_path, scripted):
    old = sqlite3.connect(tmp_path / "old.sqlite")  # a cache made before the `generations` column
    old.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL, "
                "finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL)")
    old.execute("INSERT INTO responses VALUES (?, 'scripted', 'kept', 'stop', 1, 1)",
                (cache_key("scripted", MESSAGES, Sampling(), 0),))
    old.commit()
    old.close()
    cached = CachedBackend(scripted(lambda m, s: "fresh"), tmp_path / "old.sqlite")
    other = [{"role": "user", "content": "other"}]
    assert [r[0].text for r in cached.generate([MESSAGES, other], Sampling())] == ["kept", "fresh"]
    counts = dict(cached._db.execute("SELECT text, generations FROM responses").fetchall())
    assert counts == {"kept": 1, "fresh": 1}
    # Storing an answer for a key again (a call paid twice) is counted, not hidden:
    cached._db.execute(INSERT, (cache_key("scripted", other, Sampling(), 0), "scripted", "again", "stop", 1, 1))
    assert dict(cached._db.execute("SELECT text, generations FROM responses").fetchall())["again"] == 2


def test_a_reply_with_half_an_emoji_is_stored_and_usable(tmp_path, scripted):
    cached = CachedBackend(scripted(lambda m, s: "Explain the moon \ud83d in detail"), tmp_path / "c.sqlite")
    (reply,), = cached.generate([MESSAGES], Sampling())
    assert reply.text == "Explain the moon \ufffd in detail"
    reply.text.encode("utf-8")  # writable as UTF-8, as every output file is


def test_what_else_decides_an_answer_joins_the_cache_key(tmp_path):
    """The backend contract's `cache_extras()`: empty, the key is as it always was; set, answers are kept apart."""

    class Quantised(ScriptedBackend):
        def __init__(self, bits):
            super().__init__(lambda m, s: f"{bits}-bit answer")
            self.bits = bits

        def cache_extras(self):
            return {"bits": self.bits}

    assert cache_key("m", MESSAGES, Sampling(), 0, {}) == cache_key("m", MESSAGES, Sampling(), 0)
    assert cache_key("m", MESSAGES, Sampling(), 0, {"bits": 4}) != cache_key("m", MESSAGES, Sampling(), 0)
    path = tmp_path / "c.sqlite"
    first = CachedBackend(Quantised(4), path).generate([MESSAGES], Sampling())[0][0]
    other = CachedBackend(Quantised(8), path).generate([MESSAGES], Sampling())[0][0]
    again = CachedBackend(Quantised(4), path).generate([MESSAGES], Sampling())[0][0]
    assert (first.text, first.cached, other.text, other.cached) == ("4-bit answer", False, "8-bit answer", False)
    assert (again.text, again.cached) == ("4-bit answer", True)
