"""`sprout export`: every format, from sprout records and from an Alpaca file, loads back with `datasets` and equals
its source; the `messages` export trains as it is with a stock TRL SFTTrainer; bad rows, an existing --out and a
missing input are one clear error (exit 2) with nothing written."""

import json
import math
import subprocess
import sys

import pytest

from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record
from sprout.datasets.export import export
from tests.conftest import REPO, save_tiny_llama, write

SYSTEM = "Answer briefly."


def make_records() -> list[Record]:
    def lineage(n: int, **extra) -> Lineage:
        return Lineage(generator="self_instruct", operation="instances", task_id=f"t{n % 3}", seed_ids=[f"seed-{n}"],
                       round=n % 2, prompts={"instances": f"h{n}"}, model="smollm2-135m",
                       sampling={"temperature": 0.7, "top_p": 0.5, "stop": ["\n\n"]}, **extra)

    rows = [
        Record(instruction="Is the statement a political promise?", input="We will cut taxes by 2026.",
               output="True", kind="classification", label="True", lineage=lineage(0)),
        Record(instruction="Is the statement a political promise?", input="The weather was nice.", output="False",
               kind="classification", label="False", lineage=lineage(1)),
        Record(instruction="Translate to French: « good morning » ☀", output="Bonjour ☀ — ça va ?",
               lineage=lineage(2)),
        Record(instruction="Summarise in one line.", input="Line one.\nLine two.\n\n日本語のテキスト。",
               output="Two lines and some Japanese.", lineage=lineage(3, parent_ids=["abc"])),
        Record(instruction="Name three primes.", output="2, 3 and 5.", lineage=Lineage(generator="evol_instruct",
               operation="deepen", parent_ids=["p1", "p2"], round=2)),
        Record(instruction="Give an emoji for joy.", output="😀", lineage=lineage(5)),
        Record(instruction="Add the numbers.", input="2 + 2", output="4", lineage=lineage(6)),
        Record(instruction="Say hi.", output="Hi!", lineage=Lineage(generator="flan", task_id="greet")),
    ]
    return rows


ALPACA = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "1. Eat well.\n2. Sleep.\n3. Move."},
    {"instruction": "Translate to German.", "input": "Grüße aus Köln — ✓", "output": "Greetings from Cologne — ✓"},
    {"instruction": "Classify the sentiment.", "input": "I love it!", "output": "positive"},
    {"instruction": "What is 7 × 6?", "input": "", "output": "42"},
]


@pytest.fixture
def records_file(tmp_path):
    return write(tmp_path / "examples.jsonl", "".join(r.to_json() + "\n" for r in make_records()))


@pytest.fixture
def alpaca_file(tmp_path):
    return write(tmp_path / "alpaca_data.json", json.dumps(ALPACA, ensure_ascii=False, indent=4))


def source_rows(source: str) -> list[dict]:
    """What each source row holds, as plain dicts: the ground truth the exports are compared with."""
    if source == "records":
        return [r.model_dump(mode="json", exclude_none=True) for r in make_records()]
    return [dict(row) for row in ALPACA]


def expected_messages(row: dict, system: str | None = None) -> list[dict]:
    user = f"{row['instruction']}\n\n{row['input']}" if row.get("input") else row["instruction"]
    return [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": user},
            {"role": "assistant", "content": row["output"]}]


def load_json(path, tmp_path) -> list[dict]:
    from datasets import load_dataset

    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache")).to_list()


@pytest.fixture(params=["records", "alpaca"])
def source(request, records_file, alpaca_file):
    return request.param, (records_file if request.param == "records" else alpaca_file)


def test_alpaca_export_loads_back_equal_to_the_source(tmp_path, source):
    name, path = source
    out = tmp_path / "alpaca.json"
    summary = export(path, "alpaca", out)
    assert summary == {"format": "alpaca", "rows": len(source_rows(name)), "out": str(out)}
    assert out.read_text(encoding="utf-8").lstrip().startswith("[")  # Alpaca's own layout: one JSON array
    loaded = load_json(out, tmp_path)
    assert loaded == [{k: row.get(k, "") for k in ("instruction", "input", "output")} for row in source_rows(name)]


@pytest.mark.parametrize("system", [None, SYSTEM])
def test_messages_export_loads_back_equal_to_the_source(tmp_path, source, system):
    name, path = source
    out = tmp_path / "messages.jsonl"
    export(path, "messages", out, system_prompt=system)
    assert all(json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())  # JSONL
    loaded = load_json(out, tmp_path)
    rows = source_rows(name)
    assert [row["messages"] for row in loaded] == [expected_messages(row, system) for row in rows]
    if name == "records":
        assert [row["id"] for row in loaded] == [row["id"] for row in rows]
    assert len({row["id"] for row in loaded}) == len(rows)  # Alpaca rows get a stable content-hash id


def test_sharegpt_export_loads_back_equal_to_the_source(tmp_path, source):
    name, path = source
    out = tmp_path / "sharegpt.json"
    export(path, "sharegpt", out, system_prompt=SYSTEM)
    loaded = load_json(out, tmp_path)
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    expected = [[{"from": names[m["role"]], "value": m["content"]} for m in expected_messages(row, SYSTEM)]
                for row in source_rows(name)]
    assert [row["conversations"] for row in loaded] == expected
    if name == "records":
        assert [row["id"] for row in loaded] == [r.id for r in make_records()]


def test_hf_export_splits_seeded_and_keeps_every_field(tmp_path, source):
    from datasets import load_from_disk

    name, path = source
    rows = source_rows(name)
    out = tmp_path / "hf"
    summary = export(path, "hf", out, validation_share=0.25, seed=7)
    n_val = round(len(rows) * 0.25)
    assert (summary["train"], summary["validation"]) == (len(rows) - n_val, n_val)
    loaded = load_from_disk(str(out))
    assert {k: len(v) for k, v in loaded.items()} == {"train": len(rows) - n_val, "validation": n_val}
    assert loaded["train"].features == loaded["validation"].features
    together = [*loaded["train"].to_list(), *loaded["validation"].to_list()]
    by_instruction = {(r["instruction"], r["input"]): r for r in together}
    assert len(by_instruction) == len(rows)
    for row in rows:
        got = by_instruction[(row["instruction"], row.get("input", ""))]
        assert got["messages"] == expected_messages(row)
        assert got["output"] == row["output"]
        if name == "records":
            for field in ("id", "kind", "label"):
                assert got[field] == row.get(field)
            assert Lineage.model_validate(json.loads(got["lineage"])) == Lineage.model_validate(row["lineage"])
        else:
            assert got["kind"] is got["label"] is got["lineage"] is None  # not in an Alpaca row, so not invented

    # The split is seeded: the same seed gives the same rows in the same order, another seed another split.
    export(path, "hf", tmp_path / "again", validation_share=0.25, seed=7)
    again = load_from_disk(str(tmp_path / "again"))
    assert again["train"]["id"] == loaded["train"]["id"] and again["validation"]["id"] == loaded["validation"]["id"]
    export(path, "hf", tmp_path / "other", validation_share=0.25, seed=8)
    assert sorted(load_from_disk(str(tmp_path / "other"))["validation"]["id"]) != sorted(loaded["validation"]["id"])


def test_hf_without_validation_keeps_an_empty_split_with_the_same_columns(tmp_path, records_file):
    from datasets import load_from_disk

    export(records_file, "hf", tmp_path / "hf", validation_share=0)
    loaded = load_from_disk(str(tmp_path / "hf"))
    assert len(loaded["train"]) == len(make_records()) and len(loaded["validation"]) == 0
    assert loaded["validation"].column_names == loaded["train"].column_names == [
        "id", "messages", "instruction", "input", "output", "kind", "label", "lineage"]


def test_hf_force_replaces_an_earlier_export_whole_and_leaves_no_staging(tmp_path, records_file, alpaca_file):
    from datasets import load_from_disk

    out = tmp_path / "hf"
    export(records_file, "hf", out)
    with pytest.raises(UserError, match="exists"):
        export(alpaca_file, "hf", out)
    export(alpaca_file, "hf", out, force=True)
    assert sum(len(split) for split in load_from_disk(str(out)).values()) == len(ALPACA)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpaca_data.json", "examples.jsonl", "hf"]


def test_messages_rows_export_and_only_single_turns_become_alpaca(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
        {"id": "mine", "messages": [{"role": "system", "content": "Own system."},
                                    {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"messages": [{"role": "user", "content": "1?"}, {"role": "assistant", "content": "One."},
                      {"role": "user", "content": "2?"}, {"role": "assistant", "content": "Two."}]},
    ]
    path = write(tmp_path / "chat.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError) as error:
        export(path, "alpaca", tmp_path / "a.json")
    assert error.value.details == [
        f"{path}:2: has a system turn, and Alpaca has no field for one; export it as messages or sharegpt",
        f"{path}:3: 4 turns (user, assistant, user, assistant): Alpaca holds one user turn and one answer; export "
        "it as messages or sharegpt"]
    assert not (tmp_path / "a.json").exists()

    single = write(tmp_path / "single.jsonl", json.dumps(rows[0]) + "\n")
    export(single, "alpaca", tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text()) == [{"instruction": "Hi?", "input": "", "output": "Hello."}]

    export(path, "messages", tmp_path / "m.jsonl", system_prompt=SYSTEM)
    exported = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert exported[0]["messages"] == [{"role": "system", "content": SYSTEM}, *rows[0]["messages"]]
    assert exported[1] == rows[1]  # its own system turn and id are kept
    assert exported[2]["messages"][1:] == rows[2]["messages"]

    export(path, "messages", tmp_path / "bare.jsonl", ids=False)
    assert [json.loads(line) for line in (tmp_path / "bare.jsonl").read_text().splitlines()] == [
        {"messages": r["messages"]} for r in rows]


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "alpaca", "system_prompt": SYSTEM}, "Alpaca rows have no system turn"),
    ({"fmt": "messages", "validation_share": 0.2}, "split the hf export"),
    ({"fmt": "hf", "validation_share": 1.0}, "below 1"),
    ({"fmt": "csv"}, "use one of alpaca, messages, sharegpt, hf"),
])
def test_options_that_do_not_apply_are_refused(tmp_path, records_file, kwargs, message):
    fmt = kwargs.pop("fmt")
    with pytest.raises(UserError, match=message):
        export(records_file, fmt, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template."""
    from transformers import AutoTokenizer

    from sprout.backends.model_store import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("embedded", log=lambda *_: None))
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tokenizer)


def test_messages_export_trains_as_it_is_with_a_stock_trl_sfttrainer(tmp_path, records_file, tiny_model):
    """No sprout code in the training: the exported file, `load_dataset`, and TRL's SFTTrainer in fp32 on CPU."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = tmp_path / "train.jsonl"
    rows = export(records_file, "messages", out, system_prompt=SYSTEM)["rows"]
    dataset = load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model, dtype="float32"),
                         processing_class=AutoTokenizer.from_pretrained(tiny_model), train_dataset=dataset,
                         args=SFTConfig(output_dir=str(tmp_path / "stock"), max_steps=2, per_device_train_batch_size=4,
                                        report_to=[], use_cpu=True, bf16=False, fp16=False, save_strategy="no",
                                        disable_tqdm=True, dataloader_num_workers=0))
    assert len(trainer.train_dataset) == rows
    result = trainer.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss) and result.training_loss > 0


def sprout_export(*args):
    return subprocess.run([sys.executable, "-m", "sprout", "export", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_cli_bad_rows_are_listed_with_their_lines_and_nothing_is_written(tmp_path, records_file):
    good = records_file.read_text(encoding="utf-8").splitlines()
    bad = write(tmp_path / "bad.jsonl", "\n".join([good[0], '{"instruction": "No answer", "output": ""}', good[1],
                                                  '{"text": "plain"}', '"a string"']) + "\n")
    out = tmp_path / "out.jsonl"
    result = sprout_export(bad, "--format", "messages", "--out", out)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    assert "3 row(s)" in result.stderr
    for line in (2, 4, 5):
        assert f"{bad}:{line}: " in result.stderr
    assert f"{bad}:1:" not in result.stderr and not out.exists()


def test_cli_exports_and_refuses_to_overwrite_without_force(tmp_path, records_file):
    out = tmp_path / "out.json"
    result = sprout_export(records_file, "--format", "alpaca", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"exported {len(make_records())} rows as alpaca -> {out}"
    before = out.read_bytes()
    result = sprout_export(alpaca_rows := write(tmp_path / "a.json", json.dumps(ALPACA)), "-f", "alpaca", "-o", out)
    assert result.returncode == 2 and "exists" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.stderr and out.read_bytes() == before
    result = sprout_export(alpaca_rows, "-f", "hf", "-o", tmp_path / "hf", "--validation-share", "0.5", "--seed", 3)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"exported 4 rows as hf: 2 train, 2 validation -> {tmp_path / 'hf'}"


def test_cli_missing_input_and_unsafe_force_are_one_clear_error(tmp_path):
    result = sprout_export(tmp_path / "missing.jsonl", "--format", "messages", "--out", tmp_path / "o.jsonl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "missing.jsonl: no such input file" in result.stderr and not (tmp_path / "o.jsonl").exists()

    folder = tmp_path / "precious"
    write(folder / "notes.txt", "keep me")
    source = write(tmp_path / "a.json", json.dumps(ALPACA))
    result = sprout_export(source, "--format", "hf", "--out", folder, "--force")
    assert result.returncode == 2 and "no earlier hf export" in result.stderr and "Traceback" not in result.stderr
    assert (folder / "notes.txt").read_text() == "keep me"
