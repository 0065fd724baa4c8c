"""`sprout train`, `eval` and `chat` on the real embedded model (SmolLM2-135M), a few steps on CPU."""

import json

import pytest

from tests.test_cli import sprout

pytestmark = pytest.mark.slow


def test_train_eval_chat_on_the_embedded_model(tmp_path):
    out = tmp_path / "train"
    trained = sprout("train", "--data", "seeds/tasks/political_promises.yaml", "--out", str(out),
                     "--set", "max_steps=3", "--set", "batch_size=4", "--set", "logging_steps=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "trained 29 examples (3 held out) for 3 steps" in trained.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["truncation"]["dropped"] == 0 and summary["eval_loss"] > 0
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    evaluated = sprout("eval", "--adapter", str(out / "adapter"), "--data",
                       "seeds/tasks/political_promises_heldout.jsonl", "--limit", "6", "--max-tokens", "6")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert report["task"] == "classification" and report["labels"] == ["False", "True"]
    assert 0 <= report["base"]["accuracy"] <= 1 and 0 <= report["tuned"]["accuracy"] <= 1
    assert report["tuned"]["answer_loss"] > 0 and len(report["samples"]) == 6
    assert "| model | accuracy |" in (out / "eval" / "eval.md").read_text()
    chatted = sprout("chat", "--adapter", str(out / "adapter"), "--max-tokens", "8", "Name a colour.")
    assert chatted.returncode == 0 and chatted.stdout.strip()


def test_train_refuses_a_missing_data_file_with_exit_2(tmp_path):
    result = sprout("train", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "run `make data` first" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
