"""`sprout train`, `eval` and `chat` on the real embedded model (SmolLM2-135M), a few steps on CPU."""

import json

import pytest

from tests.test_cli import sprout

pytestmark = pytest.mark.slow


def test_train_eval_chat_on_the_embedded_model(tmp_path):
    out = tmp_path / "train"
    # Three steps of two examples: what the CLI does around training (split, template, adapter, metrics, summary)
    # is the same at any size; bigger batches only cost CI time (batch 4 x accumulation 2: 34 s of steps, now ~8 s).
    trained = sprout("train", "--data", "seeds/tasks/political_promises.yaml", "--out", str(out),
                     "--set", "max_steps=3", "--set", "batch_size=2", "--set", "grad_accumulation=1",
                     "--set", "logging_steps=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "trained 29 examples (3 held out) for 3 steps" in trained.stdout
    assert "Warning" not in trained.stderr, trained.stderr[-3000:]  # a normal run prints no library warnings
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["truncation"]["dropped"] == 0 and summary["eval_loss"] > 0
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    evaluated = sprout("eval", "--adapter", str(out / "adapter"), "--data",
                       "seeds/tasks/political_promises_heldout.jsonl", "--limit", "4", "--max-tokens", "6")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert report["task"] == "classification" and report["labels"] == ["False", "True"]
    assert 0 <= report["base"]["accuracy"] <= 1 and 0 <= report["tuned"]["accuracy"] <= 1
    assert report["tuned"]["answer_loss"] > 0 and len(report["samples"]) == 4
    assert "| model | accuracy |" in (out / "eval" / "eval.md").read_text()
    chatted = sprout("chat", "--adapter", str(out / "adapter"), "--max-tokens", "8", "Name a colour.")
    assert chatted.returncode == 0 and chatted.stdout.strip()


def test_train_refuses_a_missing_data_file_with_exit_2(tmp_path):
    result = sprout("train", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "run `make data` first" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_train_stages_of_a_mix_on_the_embedded_model(tmp_path):
    """`sprout mix` with a pretraining-text share, then `sprout train --stages`: stage 2 goes on from stage 1."""
    rows = [{"instruction": f"Give the number after {i}.", "input": "", "output": f"It is {i + 1}."} for i in range(30)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mixed = sprout("mix", "--set", f"out_dir={tmp_path / 'mix'}",
                   "--set", f"sources={{numbers: {{path: {tmp_path / 'rows.jsonl'}}}}}",
                   "--set", "stages=[{name: tasks, size: 12, shares: {numbers: 1}}, "
                            "{name: more, size: 10, shares: {numbers: 1}, keep_from_previous: 0.2}]",
                   "--set", "pretraining.share=0.1")
    assert mixed.returncode == 0, mixed.stderr[-3000:]
    out = tmp_path / "staged"
    trained = sprout("train", "--stages", str(tmp_path / "mix"), "--out", str(out), "--set", "max_steps=2",
                     "--set", "batch_size=2", "--set", "grad_accumulation=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "stage tasks: trained" in trained.stdout and "stage more: trained" in trained.stdout
    # no validation split and too few steps to log a loss: once a matplotlib legend warning
    assert "Warning" not in trained.stderr, trained.stderr[-3000:]
    assert (out / "stage-2-more" / "adapter" / "adapter_model.safetensors").is_file()
    stages = json.loads((out / "stages.json").read_text())
    assert [s["steps"] for s in stages["stages"]] == [2, 2]
    assert [s["init_adapter"] for s in stages["stages"]] == [None, str(out / "stage-1-tasks" / "adapter")]
    both = sprout("train", "--stages", str(tmp_path / "mix"), "--data", "x.jsonl", "--out", str(tmp_path / "no"))
    assert both.returncode == 2 and "--stages and --data" in both.stderr and not (tmp_path / "no").exists()
