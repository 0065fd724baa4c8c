"""`sprout dedup` and `sprout filter` over datasets a user already has (Alpaca JSON/JSONL, plain text)."""

import json

from rouge_score import rouge_scorer

from tests.conftest import write
from tests.test_cli import sprout

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
INSTRUCTIONS = [
    "Explain how a rainbow forms after a storm.",
    "Explain how a rainbow forms after the storm.",
    "Give three tips for saving money on groceries.",
    "Give three tips for saving money on groceries each week.",
    "Translate 'good morning' into Spanish.",
    "Summarize the plot of a famous novel in two sentences.",
    "为什么天空是蓝色的？",
    "为什么天空是蓝色的？",
]


def reference_keep(texts, threshold=0.7):
    kept = []
    for text in texts:
        if all(SCORER.score(k, text)["rougeL"].fmeasure <= threshold for k in kept):
            kept.append(text)
    return kept


def test_dedup_text_file_matches_rouge_score_and_writes_rejects(tmp_path):
    source = write(tmp_path / "in.txt", "\n".join(INSTRUCTIONS) + "\n")
    result = sprout("dedup", str(source), "--out", str(tmp_path / "out.txt"))
    assert result.returncode == 0, result.stderr
    kept = (tmp_path / "out.txt").read_text().splitlines()
    assert kept == reference_keep(INSTRUCTIONS)
    assert kept.count("为什么天空是蓝色的？") == 2  # rouge-score gives Chinese no tokens: never a duplicate
    rejects = [json.loads(line) for line in (tmp_path / "out.rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 4]
    assert rejects[0]["match"] == INSTRUCTIONS[0]
    assert rejects[0]["score"] == SCORER.score(INSTRUCTIONS[0], INSTRUCTIONS[1])["rougeL"].fmeasure
    assert result.stdout.startswith("read 8, kept 6, dropped 2")


def test_dedup_unicode_mode_and_alpaca_array(tmp_path):
    rows = [{"instruction": text, "input": "", "output": f"answer {i}"} for i, text in enumerate(INSTRUCTIONS)]
    source = write(tmp_path / "alpaca.json", json.dumps(rows, ensure_ascii=False, indent=1))
    result = sprout("dedup", str(source), "--out", str(tmp_path / "kept.json"), "--tokenizer", "unicode",
                    "--on", "instruction")
    assert result.returncode == 0, result.stderr
    kept = json.loads((tmp_path / "kept.json").read_text())
    assert [r["output"] for r in kept] == ["answer 0", "answer 2", "answer 4", "answer 5", "answer 6"]
    # By default a row is a near-duplicate only when every field is: these outputs all differ, so every row stays.
    result = sprout("dedup", str(source), "--out", str(tmp_path / "all.json"), "--tokenizer", "unicode")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "all.json").read_text()) == rows
    assert "on instruction+input+output (each field)" in result.stdout


def test_dedup_names_the_rows_without_the_field(tmp_path):
    source = write(tmp_path / "rows.jsonl", '{"instruction": "Say hi."}\n{"prompt": "Say hello."}\n')
    result = sprout("dedup", str(source), "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2
    assert f"{source}:2: no `instruction` or `messages` field (has: ['prompt'])" in result.stderr
    assert "--field NAME" in result.stderr and "Traceback" not in result.stderr
    result = sprout("dedup", str(source), "--out", str(tmp_path / "x.jsonl"), "--field", "instruction")
    assert result.returncode == 2
    assert f"{source}:2: no string field 'instruction'" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_filter_an_alpaca_dataset(tmp_path):
    rows = [
        {"instruction": "Explain how a rainbow forms after a storm.", "input": "",
         "output": "Sunlight is refracted by raindrops and split into its colours."},
        {"instruction": "Explain how a rainbow forms after the storm.", "input": "",
         "output": "Sunlight is refracted by the raindrops and split into its colours."},
        {"instruction": "Describe the image above.", "input": "", "output": "A cat on a mat."},
        {"instruction": "Tell me a secret about your training.", "input": "", "output": "Sorry, I cannot do that."},
        {"instruction": "Copy the input exactly as it is.", "input": "hello there", "output": "hello there"},
        {"instruction": "List the planets of the solar system.", "input": "", "output": "The planets are:"},
        {"instruction": "Name the largest ocean on Earth.", "input": "", "output": "The Pacific Ocean."},
    ]
    source = write(tmp_path / "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "filtered"
    result = sprout("filter", str(source), "--set", f"out_dir={out}", "--set", f"cache={tmp_path / 'c.sqlite'}")
    assert result.returncode == 0, result.stderr
    kept = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert [k["instruction"] for k in kept] == [rows[0]["instruction"], rows[6]["instruction"]]
    rejects = {json.loads(line)["rule"] for line in (out / "rejected.jsonl").read_text().splitlines()}
    assert rejects == {"rouge_l", "blacklist", "refusal", "input_equals_output", "trailing_colon"}
    report = json.loads((out / "report.json").read_text())
    rows_stage = report["stages"]["rows"]
    assert rows_stage["entered"] == 7 and rows_stage["accepted"] == 2
    assert sum(r["dropped"] for r in rows_stage["rules"].values()) == 5
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert "Filter funnel" in result.stdout


def test_filter_config_errors_exit_2(tmp_path):
    source = write(tmp_path / "data.jsonl", '{"instruction": "Say hi to me.", "output": "Hi"}\n')
    result = sprout("filter", str(source), "--set", "filters.task_rules=[wordcount]")
    assert result.returncode == 2
    assert "unknown rule(s) ['wordcount']" in result.stderr and "Traceback" not in result.stderr
