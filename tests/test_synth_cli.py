"""`sprout synth` and `sprout templates` as a user meets them; the synth and grow runs use the real embedded model."""

import json

import pytest

from tests.conftest import small_nli_templates, write
from tests.test_cli import sprout


@pytest.mark.slow
def test_synth_makes_political_promise_pairs_with_the_asked_labels(tmp_path):
    result = sprout("synth", "--task", "seeds/tasks/political_promises.yaml", "--n", "6",
                    "--set", f"out_dir={tmp_path / 'run'}", "--set", f"cache={tmp_path / 'cache.sqlite'}",
                    "--set", "synth.requests_per_batch=6", "--set", "synth.label_distribution={'True': 1, 'False': 2}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "examples.jsonl").read_text().splitlines()]
    assert sorted(r["label"] for r in rows) == ["False"] * 4 + ["True"] * 2
    assert all(r["input"] and r["lineage"]["model"].startswith("llama.cpp:smollm2") for r in rows)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (task,) = report["synthesis"]
    assert task["target"] == {"True": 2, "False": 4}
    accepted = {mode: sum(c.values()) for mode, c in task["accepted"].items()}
    assert sum(accepted.values()) == 6
    assert "label balance" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_templates_grow_writes_checked_variants_for_review(tmp_path):
    """A template file of the user's own (three templates: as many new wordings asked for as the shipped ten would
    prove); the grown file lands beside it and, when anything was kept, is a template set `templates check` loads."""
    templates = small_nli_templates(tmp_path)
    result = sprout("templates", "grow", "--task", str(templates), "--variants", "1",
                    "--set", f"cache={tmp_path / 'cache.sqlite'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "of 3 new wordings kept" in result.stdout
    out = tmp_path / "my_nli.grown.yaml"
    rejects = [json.loads(line) for line in out.with_suffix(".rejected.jsonl").read_text().splitlines()]
    kept = int(result.stdout.split(" of ")[0])
    assert kept + len(rejects) == 3  # every reply is either kept or a counted reject with its reason
    assert all(r["rule"] in {"parse", "placeholders", "template_rules", "rouge_l", "jinja"} for r in rejects)
    assert out.exists() == (kept > 0)
    if kept:
        check = sprout("templates", "check", str(out))
        assert check.returncode == 0 and f"ok: {out}: {kept} templates" in check.stdout, check.stderr


def test_templates_expand_a_template_file_of_ones_own(tmp_path):
    templates = small_nli_templates(tmp_path)
    result = sprout("templates", "expand", str(templates), "--all", "--out", str(tmp_path / "flan"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "flan" / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 30 * 3
    assert {r["lineage"]["task_id"] for r in rows} == {"flan:my_nli"}  # named after the file, not its path
    assert {r["lineage"]["operation"] for r in rows} == {"my_nli/does_it_follow", "my_nli/two_sentences",
                                                         "my_nli/write_a_hypothesis"}
    missing = sprout("templates", "grow", "--task", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"no template file {tmp_path / 'nope.yaml'}" in " ".join(missing.stderr.split()), missing.stderr


def test_synth_bad_task_spec_exits_2_and_writes_nothing(tmp_path):
    spec = write(tmp_path / "t.yaml", "name: t\nkind: classification\ninstruction: Is it?\nlabels: [a]\n"
                                      "examples:\n  - {input: x, output: a}\n")
    out = tmp_path / "run"
    result = sprout("synth", "--task", str(spec), "--set", f"out_dir={out}",
                    "--set", f"cache={tmp_path / 'cache.sqlite'}")
    assert result.returncode == 2
    assert "invalid task spec" in result.stderr and "at least two distinct labels" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "cache.sqlite").exists()


def test_templates_check_lists_every_shipped_set():
    result = sprout("templates", "check")
    assert result.returncode == 0, result.stderr
    for task in ("sentiment", "nli", "summarization", "qa", "paraphrase"):
        assert f"ok: {task}: 10 templates (3 inverted), 30 rows" in result.stdout


def test_templates_expand_writes_a_run_with_a_report(tmp_path):
    result = sprout("templates", "expand", "sentiment", "qa", "--all", "--out", str(tmp_path / "flan"))
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "flan" / "examples.jsonl").read_text().splitlines()
    assert len(rows) == 2 * 30 * 10
    assert "FLAN template expansion" in (tmp_path / "flan" / "report.md").read_text()
    # Not a terminal (a pipe, as in CI or `| tee`): whole-run progress as plain lines, no bar, no control codes.
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress ")]
    assert lines[0].endswith("flan 0/60 rows (ETA ?) | run ETA ?")
    assert "flan done 60/60 rows in" in lines[-1] and lines[-1].endswith("| run ETA 0s")
    assert "\x1b" not in result.stderr and "\r" not in result.stderr


def test_templates_expand_unknown_task_exits_2():
    result = sprout("templates", "expand", "sentimnet")
    assert result.returncode == 2 and "Known tasks:" in result.stderr and "Traceback" not in result.stderr
