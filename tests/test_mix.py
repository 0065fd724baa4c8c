"""`sprout mix`: realised proportions, multi-stage keeps, the pretraining-text share, provenance, determinism and
the errors a user meets. No model is involved: every test here runs in well under a second or two."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from sprout.core.apportion import largest_remainder
from sprout.core.records import Lineage, Record
from sprout.datasets.chat_rows import to_messages
from sprout.datasets.mix_config import load_mix_config
from sprout.datasets.mixing import run_mix
from tests.conftest import REPO, write
from tests.test_cli import sprout

PARAGRAPHS = [f"Paragraph {i} talks about topic number {i} in plain words,\nover two lines of text." for i in range(12)]


def records_file(path: Path, counts: dict[str, int]) -> Path:
    """sprout records with lineage, as `sprout data` writes them (one JSON object per line)."""
    rows = [Record(instruction=f"{generator} task {i}: say something.", output=f"answer {i}",
                   lineage=Lineage(generator=generator, operation="op", task_id=f"{generator}-{i}", round=i % 3))
            for generator, n in counts.items() for i in range(n)]
    return write(path, "".join(r.to_json() + "\n" for r in rows))


def alpaca_array(path: Path, n: int, tag: str = "alpaca") -> Path:
    rows = [{"instruction": f"{tag} instruction {i}", "input": "" if i % 2 else f"input {i}", "output": f"out {i}"}
            for i in range(n)]
    return write(path, json.dumps(rows, indent=2))


def messages_file(path: Path, n: int) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": f"hi {i}"}]}
            for i in range(n)]
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def text_file(path: Path) -> Path:
    return write(path, "\n\n".join(PARAGRAPHS) + "\n")


def config(tmp_path: Path, body: dict, name: str = "mix.yaml") -> Path:
    return write(tmp_path / name, yaml.safe_dump({"out_dir": str(tmp_path / "out"), **body}, sort_keys=False))


def mix(path: Path, *overrides: str, force: bool = False) -> dict:
    cfg, where = load_mix_config(path, list(overrides))
    return run_mix(cfg, where, force=force)


def stage_rows(out: Path, file: str) -> list[dict]:
    return [json.loads(line) for line in (out / file).read_text(encoding="utf-8").splitlines()]


def reference_allocation(size: int, weights: list[Fraction]) -> list[int]:
    """Largest remainder, written out independently of sprout's code: Hamilton's method, ties to the earlier."""
    quotas = [size * w / sum(weights) for w in weights]
    counts = [math.floor(q) for q in quotas]
    left = size - sum(counts)
    by_remainder = sorted(range(len(weights)), key=lambda i: quotas[i] - counts[i], reverse=True)  # stable: earlier
    for i in by_remainder[:left]:
        counts[i] += 1
    return counts


@pytest.mark.parametrize(("weights", "size"), [
    ([1, 1, 1], 10), ([0.5, 0.3, 0.2], 7), ([3, 1], 1), ([0.7, 0.2, 0.1], 1000), ([2, 2, 1, 0], 9), ([1e-3, 1], 3)])
def test_largest_remainder_is_exact_and_each_count_within_one_of_its_quota(weights, size):
    counts = largest_remainder(size, weights)
    exact = [Fraction(str(w)) for w in weights]
    assert counts == reference_allocation(size, exact)
    assert sum(counts) == size
    for count, w in zip(counts, exact, strict=True):
        assert abs(count - size * w / sum(exact)) < 1


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize(("shares", "size", "pretraining"), [
    ({"recs": 1, "alp": 1, "msg": 1}, 10, 0.0),
    ({"recs": 0.6, "alp": 0.3, "msg": 0.1}, 37, 0.05),
    ({"recs": 5, "alp": 2, "msg": 2}, 23, 0.1),
    ({"recs": 1, "alp": 0, "msg": 3}, 40, 0.0),
])
def test_realised_counts_are_the_largest_remainder_allocation_and_shares_within_1_over_size(
        tmp_path, shares, size, pretraining, seed):
    """Tolerance: every part's realised share is within 1/size of the asked share (counts are the exact quota
    rounded down or up, by largest remainder over the parts), and the counts sum to the size exactly."""
    records_file(tmp_path / "recs.jsonl", {"self_instruct": 50})
    alpaca_array(tmp_path / "alp.json", 40)
    messages_file(tmp_path / "msg.jsonl", 40)
    text_file(tmp_path / "text.txt")
    path = config(tmp_path, {"seed": seed, "sources": {n: {"path": str(tmp_path / f)} for n, f in
                                                       [("recs", "recs.jsonl"), ("alp", "alp.json"),
                                                        ("msg", "msg.jsonl")]},
                             "pretraining": {"path": str(tmp_path / "text.txt"), "share": pretraining},
                             "stages": [{"name": "one", "size": size, "shares": shares}]})
    manifest = mix(path)
    rows = stage_rows(tmp_path / "out", "stage-1-one.jsonl")
    assert len(rows) == size
    names = [n for n, w in shares.items() if w > 0]
    rest = 1 - Fraction(str(pretraining))
    asked = {n: rest * Fraction(str(shares[n])) / sum(Fraction(str(shares[m])) for m in names) for n in names}
    asked["pretraining"] = Fraction(str(pretraining))
    expected = dict(zip(asked, reference_allocation(size, list(asked.values())), strict=True))
    realised = {n: sum(r["mix"]["source"] == n for r in rows) for n in asked}
    assert realised == expected
    for name, share in asked.items():
        assert abs(realised[name] / size - share) < Fraction(1, size)
    parts = {p["name"]: p for p in manifest["stages"][0]["parts"]}
    assert {n: p["rows"] for n, p in parts.items()} == {n: c for n, c in expected.items() if asked[n] > 0}
    # without replacement no row is drawn twice
    drawn = [(r["mix"]["source"], r["mix"]["line"]) for r in rows]
    assert len(drawn) == len(set(drawn)) and all(p["duplicates"] == 0 for p in parts.values())


def test_with_replacement_draws_more_rows_than_the_sources_hold(tmp_path):
    alpaca_array(tmp_path / "small.json", 3)
    messages_file(tmp_path / "tiny.jsonl", 2)
    path = config(tmp_path, {"sources": {"small": {"path": str(tmp_path / "small.json")},
                                         "tiny": {"path": str(tmp_path / "tiny.jsonl")}},
                             "stages": [{"name": "up", "size": 50, "shares": {"small": 3, "tiny": 2},
                                         "replace": True}]})
    manifest = mix(path)
    rows = stage_rows(tmp_path / "out", "stage-1-up.jsonl")
    counts = {n: sum(r["mix"]["source"] == n for r in rows) for n in ("small", "tiny")}
    assert counts == {"small": 30, "tiny": 20}
    assert {r["mix"]["line"] for r in rows if r["mix"]["source"] == "tiny"} == {1, 2}
    dups = {p["name"]: p["duplicates"] for p in manifest["stages"][0]["parts"]}
    assert dups == {"small": 30 - 3, "tiny": 20 - 2} and all(p["replace"] for p in manifest["stages"][0]["parts"])


def test_stage_two_keeps_its_exact_share_of_stage_one_and_provenance_points_at_every_row(tmp_path):
    records_file(tmp_path / "recs.jsonl", {"flan": 60, "self_instruct": 30})
    messages_file(tmp_path / "chat.jsonl", 40)
    text_file(tmp_path / "text.txt")
    path = config(tmp_path, {
        "sources": {"task": {"path": str(tmp_path / "recs.jsonl"), "where": {"lineage.generator": "flan"}},
                    "chat": {"path": str(tmp_path / "chat.jsonl")}},
        "pretraining": {"path": str(tmp_path / "text.txt"), "share": 0.1},
        "stages": [{"name": "task", "size": 40, "shares": {"task": 1}},
                   {"name": "chat", "size": 30, "shares": {"chat": 1}, "keep_from_previous": 0.2}]})
    mix(path)
    out = tmp_path / "out"
    one, two = stage_rows(out, "stage-1-task.jsonl"), stage_rows(out, "stage-2-chat.jsonl")
    source_lines = {
        "task": {n: json.loads(line) for n, line in enumerate((tmp_path / "recs.jsonl").read_text().splitlines(), 1)},
        "chat": {n: json.loads(line) for n, line in enumerate((tmp_path / "chat.jsonl").read_text().splitlines(), 1)}}
    kept = [r for r in two if "kept_from" in r["mix"]]
    assert len(kept) == 0.2 * 30 == 6
    for row in kept:  # drawn from stage 1's output: the same row at the line it names, never its pretraining text
        origin = one[row["mix"]["kept_from"]["line"] - 1]
        assert row["mix"]["kept_from"]["stage"] == "task" and origin["mix"]["source"] == "task"
        assert {k: v for k, v in row.items() if k != "mix"} == {k: v for k, v in origin.items() if k != "mix"}
        assert row["mix"]["line"] == origin["mix"]["line"]
    assert len({r["mix"]["kept_from"]["line"] for r in kept}) == 6
    assert sum(r["mix"]["source"] == "pretraining" for r in one) == 4
    assert sum(r["mix"]["source"] == "pretraining" for r in two) == 3
    assert sum(r["mix"]["source"] == "chat" for r in two) == 30 - 6 - 3
    for stage, rows in (("task", one), ("chat", two)):
        for row in rows:
            assert row["mix"]["stage"] == stage
            if row["mix"]["source"] != "pretraining":  # the row as the source file holds it, plus `mix`
                original = source_lines[row["mix"]["source"]][row["mix"]["line"]]
                assert {k: v for k, v in row.items() if k != "mix"} == original
    assert all(r["lineage"]["generator"] == "flan" for r in one if r["mix"]["source"] == "task")


@pytest.mark.parametrize("chunk", ["paragraphs", "words"])
def test_pretraining_share_is_cut_as_documented_and_every_row_is_trainable(tmp_path, chunk):
    alpaca_array(tmp_path / "alp.json", 30)
    text = text_file(tmp_path / "text.txt")
    path = config(tmp_path, {
        "sources": {"alp": {"path": str(tmp_path / "alp.json")}},
        "pretraining": {"path": str(text), "share": 0.25, "chunk": chunk, "words": 10},
        "stages": [{"name": "a", "size": 12, "shares": {"alp": 1}},
                   {"name": "b", "size": 8, "shares": {"alp": 1}, "keep_from_previous": 0.25,
                    "pretraining_share": 0.5}]})
    mix(path)
    lines = text.read_text().splitlines()
    words = " ".join(lines).split()
    chunks_seen = []
    for file, size, share in (("stage-1-a.jsonl", 12, 0.25), ("stage-2-b.jsonl", 8, 0.5)):
        rows = stage_rows(tmp_path / "out", file)
        texts = [r for r in rows if r["mix"]["source"] == "pretraining"]
        assert len(texts) == size * share
        for row in texts:
            assert set(row) == {"text", "mix"}
            if chunk == "paragraphs":  # a paragraph as the file has it, from the line the row names
                assert row["text"] == "\n".join(lines[row["mix"]["line"] - 1: row["mix"]["line"] + 1])
                assert row["text"] == PARAGRAPHS[row["mix"]["chunk"]]
            else:  # runs of 10 words, whitespace made single spaces, in file order
                assert row["text"] == " ".join(words[10 * row["mix"]["chunk"]: 10 * row["mix"]["chunk"] + 10])
                assert row["text"].split()[0] in lines[row["mix"]["line"] - 1].split()
            chunks_seen.append(row["mix"]["chunk"])
        for row in rows:  # the trainer's own reader accepts every row of every stage, `mix` field and all
            messages = to_messages(row)
            assert messages[-1]["role"] == "assistant"
            if row["mix"]["source"] == "pretraining":
                assert messages == [{"role": "assistant", "content": row["text"]}]
    assert len(chunks_seen) == len(set(chunks_seen)) == 3 + 4  # no chunk used twice in the whole mix


def test_shipped_config_on_real_sprout_records_via_cli_is_deterministic(tmp_path):
    """configs/mix.yaml over a records file shaped like `make data`'s, through `sprout mix`: the table, the files,
    byte-identical reruns, and another seed giving another draw."""
    records = records_file(tmp_path / "examples.jsonl",
                           {"self_instruct": 40, "evol_instruct": 8, "pair_synthesis": 16, "flan": 300})
    paths = [f"--set=sources.{n}.path={records}" for n in ("flan", "promises", "instructions")]
    out = tmp_path / "mix"
    result = sprout("mix", "--config", "configs/mix.yaml", *paths, f"--set=out_dir={out}")
    assert result.returncode == 0, result.stderr
    assert "realised proportions" in result.stdout and "kept from tasks" in result.stdout
    manifest = json.loads((out / "mix.json").read_text())
    counts = {s["name"]: {p["label"]: p["rows"] for p in s["parts"]} for s in manifest["stages"]}
    assert counts == {"tasks": {"flan": 128, "promises": 14, "pretraining": 8},
                      "dialogue": {"instructions": 38, "kept from tasks": 10, "pretraining": 2}}
    assert manifest["sources"]["promises"]["rows"] == 16 and manifest["sources"]["flan"]["kinds"] == {"sprout": 300}
    one = stage_rows(out, "stage-1-tasks.jsonl")
    assert {r["lineage"]["generator"] for r in one if r["mix"]["source"] == "promises"} == {"pair_synthesis"}
    assert all(Record.model_validate({k: v for k, v in r.items() if k != "mix"}) for r in one if "lineage" in r)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["config.yaml", "mix.json", "stage-1-tasks.jsonl", "stage-2-dialogue.jsonl"]
    again = sprout("mix", "--config", "configs/mix.yaml", *paths, f"--set=out_dir={out}")
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = sprout("mix", "--config", "configs/mix.yaml", *paths, f"--set=out_dir={tmp_path / 'other'}",
                   "--set=seed=43")
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "other" / "stage-1-tasks.jsonl").read_bytes() != before["stage-1-tasks.jsonl"]
    refused = sprout("mix", "--config", "configs/mix.yaml", *paths, f"--set=out_dir={out}", "--set=seed=43")
    assert refused.returncode == 2 and "different config" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    forced = sprout("mix", "--config", "configs/mix.yaml", *paths, f"--set=out_dir={out}", "--set=seed=43", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "stage-1-tasks.jsonl").read_bytes() == (tmp_path / "other" / "stage-1-tasks.jsonl").read_bytes()


def test_alpaca_json_array_via_cli(tmp_path):
    alpaca_array(tmp_path / "alpaca_data.json", 20)
    records_file(tmp_path / "recs.jsonl", {"self_instruct": 10})
    path = config(tmp_path, {"sources": {"alpaca": {"path": str(tmp_path / "alpaca_data.json"), "format": "alpaca"},
                                         "recs": {"path": str(tmp_path / "recs.jsonl"), "format": "sprout"}},
                             "stages": [{"name": "s", "size": 15, "shares": {"alpaca": 2, "recs": 1}}]})
    result = sprout("mix", "--config", str(path))
    assert result.returncode == 0, result.stderr
    rows = stage_rows(tmp_path / "out", "stage-1-s.jsonl")
    alpaca = [r for r in rows if r["mix"]["source"] == "alpaca"]
    assert len(alpaca) == 10 and len(rows) == 15
    array = json.loads((tmp_path / "alpaca_data.json").read_text())
    text = (tmp_path / "alpaca_data.json").read_text().splitlines()
    for row in alpaca:  # the JSON array item as it was, `line` the line its object starts on
        original = {k: v for k, v in row.items() if k != "mix"}
        assert original in array and text[row["mix"]["line"] - 1].strip() == "{"


def test_a_row_from_an_earlier_mix_keeps_that_provenance(tmp_path):
    write(tmp_path / "old.jsonl", json.dumps({"instruction": "x", "output": "y", "mix": {"source": "a", "stage": "s",
                                                                                        "line": 4}}) + "\n")
    path = config(tmp_path, {"sources": {"old": {"path": str(tmp_path / "old.jsonl")}},
                             "stages": [{"name": "again", "size": 1, "shares": {"old": 1}}]})
    mix(path)
    (row,) = stage_rows(tmp_path / "out", "stage-1-again.jsonl")
    assert row["mix"] == {"source": "old", "stage": "again", "line": 1,
                          "previous": {"source": "a", "stage": "s", "line": 4}}


BASE = {"sources": {"alp": {"path": "ALP"}, "msg": {"path": "MSG"}},
        "stages": [{"name": "one", "size": 10, "shares": {"alp": 1, "msg": 1}}]}


@pytest.mark.parametrize(("change", "expected"), [
    ({"stages": [{"name": "one", "size": 10, "shares": {"alp": 1, "chat": 1}}]},
     r"mix.yaml:\d+: key 'stages.0.shares.chat': unknown source 'chat'; sources: alp, msg"),
    ({"stages": [{"name": "one", "size": 10, "shares": {"alp": 1, "msg": -1}}]},
     r"mix.yaml:\d+: key 'stages.0.shares.msg': Input should be greater than or equal to 0"),
    ({"stages": [{"name": "one", "size": 0, "shares": {"alp": 1}}]},
     r"mix.yaml:\d+: key 'stages.0.size': Input should be greater than 0"),
    ({"stages": [{"name": "one", "size": 10, "shares": {"alp": 1}, "sise": 3}]},
     r"mix.yaml:\d+: unknown key 'stages.0.sise'; valid keys here: name, size"),
    ({"stages": [{"name": "one", "size": 10, "shares": {"alp": 1, "msg": 1}, "replace": False},
                 {"name": "two", "size": 10, "shares": {"alp": 1}, "keep_from_previous": 0.6}],
      "pretraining": {"path": "TXT", "share": 0.4}},
     r"mix.yaml:\d+: key 'stages.1': keep_from_previous \(0.6\) \+ pretraining share \(0.4\) leave no room"),
    ({"stages": [{"name": "one", "size": 30, "shares": {"alp": 1, "msg": 1}}]},
     r"mix.yaml:\d+: key 'stages.0.shares.alp': stage 'one' asks 15 rows of source 'alp', which has 8 .*"
     r"set `replace: true`"),
    ({"sources": {"alp": {"path": "ALP"}, "msg": {"path": "EMPTY"}}},
     r"mix.yaml:\d+: key 'sources.msg': no rows to draw from \(0 in .*empty.jsonl\)"),
    ({"sources": {"alp": {"path": "ALP", "where": {"lineage.generator": "flan"}}, "msg": {"path": "MSG"}}},
     r"key 'sources.alp': no rows to draw from \(8 in .*, none matching `where`\)"),
    ({"sources": {"alp": {"path": "BAD"}, "msg": {"path": "MSG"}}},
     r"bad.jsonl:2: output: missing or empty \(nothing to train on\)"),
    ({"sources": {"alp": {"path": "ALP", "format": "messages"}, "msg": {"path": "MSG"}}},
     r"alp.json:2: an alpaca row, but the source says `format: messages`"),
    ({"sources": {"alp": {"path": "MISSING"}, "msg": {"path": "MSG"}}},
     r"mix.yaml:\d+: key 'sources.alp.path': .*nope.jsonl: no such file"),
])
def test_user_errors_exit_2_with_one_error_line_and_write_nothing(tmp_path, change, expected):
    files = {"ALP": alpaca_array(tmp_path / "alp.json", 8), "MSG": messages_file(tmp_path / "msg.jsonl", 8),
             "EMPTY": write(tmp_path / "empty.jsonl", ""), "TXT": text_file(tmp_path / "text.txt"),
             "BAD": write(tmp_path / "bad.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n'),
             "MISSING": tmp_path / "nope.jsonl"}
    body = json.loads(json.dumps({**BASE, **change}))
    for source in [*body["sources"].values(), *([body["pretraining"]] if "pretraining" in body else [])]:
        source["path"] = str(files[source["path"]])
    result = sprout("mix", "--config", str(config(tmp_path, body)))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert re.search(expected, " ".join(result.stderr.split())), result.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_dir_holding_other_files_is_refused_even_with_force(tmp_path):
    alpaca_array(tmp_path / "alp.json", 8)
    out = tmp_path / "out"
    write(out / "examples.jsonl", "{}\n")
    path = config(tmp_path, {"sources": {"alp": {"path": str(tmp_path / "alp.json")}},
                             "stages": [{"name": "one", "size": 4, "shares": {"alp": 1}}]})
    result = sprout("mix", "--config", str(path), "--force")
    assert result.returncode == 2 and "holds files that are not a sprout mix (examples.jsonl)" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["examples.jsonl"]


def test_shipped_pretraining_text_gives_enough_chunks_for_the_shipped_config(monkeypatch):
    from sprout.datasets.mix_sources import chunks

    monkeypatch.chdir(REPO)
    cfg, _ = load_mix_config(Path("configs/mix.yaml"), [f"sources.{n}.path=README.md" for n in
                                                         ("flan", "promises", "instructions")])
    texts = chunks(cfg.pretraining)
    assert len(texts) >= 10 and all(len(t.split()) >= 20 for _, t in texts)
