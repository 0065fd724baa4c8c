"""`sprout data` on the real embedded model (SmolLM2-135M-Instruct), small target, then a cached rerun."""

import json

import pytest

from sprout.records import Record
from tests.test_cli import sprout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    args = ["data", "--set", f"out_dir={base / 'run'}", "--set", f"cache={base / 'cache.sqlite'}",
            "--set", "generators.self_instruct.target=4", "--set", "generators.self_instruct.requests_per_batch=4",
            "--set", "generators.self_instruct.tasks_per_batch=8",
            "--set", "generators.pair_synthesis=[{task: seeds/tasks/political_promises.yaml, n: 4, "
                     "requests_per_batch: 4, max_batches: 6}]"]
    dry = sprout(*args[:2], f"out_dir={base / 'dry'}", *args[3:], "--dry-run", "--sample-share", "0.5",
                 "--set", "backend.price={input_per_million: 0.15, output_per_million: 0.6, currency: EUR}")
    assert dry.returncode == 0, dry.stderr[-3000:]
    first = sprout(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    snapshot = {name: (base / "run" / name).read_bytes() for name in ("examples.jsonl", "rejected.jsonl")}
    report = json.loads((base / "run" / "report.json").read_text())
    second = sprout(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    return base / "run", first, snapshot, report, second, dry


def test_dry_run_estimates_the_whole_run_and_writes_nothing(run):
    out, first, _, report, _, dry = run
    assert not (out.parent / "dry").exists()
    assert "Estimated whole run" in dry.stdout and "Nothing was written to out_dir." in dry.stdout
    assert "self_instruct 2/4" in dry.stdout and "pair_synthesis 2/4" in dry.stdout  # half of each ran
    assert "EUR" in dry.stdout and "cost about" in dry.stdout
    # the sample's answers were cached: the real run after it made fewer calls than it asked for
    assert report["usage"]["cache_hits"] > 0


def test_outputs_are_valid_with_full_lineage(run):
    out, first, _, report, _, _ = run
    lines = (out / "examples.jsonl").read_text().splitlines()
    assert lines, "the run accepted nothing"
    records = [Record.model_validate(json.loads(line)) for line in lines]
    grown = [r for r in records if r.lineage.generator == "self_instruct"]
    for record in grown:
        lineage = record.lineage
        assert record.instruction and record.output
        assert lineage.operation in {"input_first", "output_first"}
        assert lineage.model.startswith("transformers:smollm2-135m-instruct:")
        assert lineage.task_id and len(lineage.seed_ids) >= 6 and lineage.prompts and lineage.sampling
        assert (record.kind == "classification") == (record.label is not None)
    assert len({r.lineage.task_id for r in grown}) == report["new_tasks"] == 4
    by_id = {r.id: r for r in records}
    for record in records:
        if record.lineage.generator == "evol_instruct":  # default config: the grown tasks are then evolved
            assert record.lineage.parent_ids[0] in by_id and record.output and record.lineage.operation
    assert "new tasks" in first.stdout and "Filter funnel" in first.stdout


def test_pair_synthesis_and_flan_run_inside_sprout_data(run):
    out, _, _, report, _, _ = run
    records = [Record.model_validate(json.loads(line)) for line in (out / "examples.jsonl").read_text().splitlines()]
    pairs = [r for r in records if r.lineage.generator == "pair_synthesis"]
    assert sorted(r.label for r in pairs) == ["False", "False", "True", "True"]  # the asked 50/50, exactly
    assert all(r.input and r.output == r.label and r.lineage.task_id == "task:political_promises" for r in pairs)
    (synthesis,) = report["synthesis"]
    assert synthesis["target"] == {"True": 2, "False": 2}
    flan = [r for r in records if r.lineage.generator == "flan"]
    assert {r.lineage.task_id for r in flan} == {f"flan:{t}" for t in ("sentiment", "nli", "summarization", "qa",
                                                                       "paraphrase")}
    assert len(flan) == sum(task["accepted"] for task in report["flan"]) == 5 * 30 * 2
    html = (out / "report.html").read_text()
    assert 'id="synthesis"' in html and 'id="flan"' in html and 'id="labels"' in html


def test_the_report_analyses_the_diversity_of_the_real_run(run):
    out, _, _, report, _, _ = run
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    spread = report["diversity"]
    distinct = len({row["instruction"] for row in examples})
    assert spread["verbs"]["instructions"] == spread["nearest_rouge_l"]["scored"] == distinct
    assert spread["verbs"]["parser"].startswith("spaCy") and spread["verbs"]["top"]
    assert 0 < spread["verbs"]["with_verb_noun"] <= spread["verbs"]["with_verb"] <= distinct
    assert sum(spread["lengths"]["output"]["counts"]) == len(examples)
    assert 'id="diversity"' in (out / "report.html").read_text()


def test_every_candidate_is_accepted_or_rejected_and_the_counts_add_up(run):
    out, _, _, report, _, _ = run
    rejects = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert all(r["rule"] and r["reason"] and "record" in r for r in rejects)
    examples = (out / "examples.jsonl").read_text().splitlines()
    stages = report["stages"]
    for counts in stages.values():
        assert counts["entered"] == counts["accepted"] + sum(r["dropped"] for r in counts["rules"].values())
    dropped = sum(r["dropped"] for counts in stages.values() for r in counts["rules"].values())
    assert len(rejects) == dropped == report["rejected"]
    evolved = stages.get("evolutions", {"accepted": 0})["accepted"]
    assert "evolutions" in stages  # the default config evolves the grown tasks
    others = sum(counts["accepted"] for name, counts in stages.items() if name.startswith(("pairs:", "flan")))
    assert len(examples) == stages["instances"]["accepted"] + evolved + others == report["examples"]
    per_rule = {}
    for r in rejects:
        per_rule[r["rule"]] = per_rule.get(r["rule"], 0) + 1
    in_report = {}  # a rule may run in several stages (rouge_l: tasks and evolutions)
    for counts in stages.values():
        for rule, n in counts["rules"].items():
            if n["dropped"]:
                in_report[rule] = in_report.get(rule, 0) + n["dropped"]
    assert per_rule == in_report
    assert report["usage"]["calls"] > 0 and report["usage"]["completion_tokens"] > 0


def test_a_rerun_makes_no_model_call_and_writes_identical_files(run):
    out, _, snapshot, report, second, _ = run
    for name, content in snapshot.items():
        assert (out / name).read_bytes() == content, name
    rerun = json.loads((out / "report.json").read_text())
    assert rerun["usage"]["calls"] == 0
    assert rerun["usage"]["cache_hits"] == report["usage"]["calls"] + report["usage"]["cache_hits"]
    assert rerun["stages"] == report["stages"]
    assert "0 new" in second.stdout
