"""`sprout data` on the real embedded model (SmolLM2-135M-Instruct), small target, then a cached rerun."""

import json

import pytest

from sprout.backends.model_store import engine_weights
from sprout.core.records import Record
from sprout.core.seeds import load_seeds
from tests.test_cli import sprout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")

    def options(out: str, target: int) -> list[str]:
        # seed 2: of seeds 0-5 and the default 42, the run whose half-size sample finds its tasks soonest (dry run
        # 37 s against 55 s for 42; measured on one core)
        return ["--set", "seed=2", "--set", f"out_dir={base / out}", "--set", f"cache={base / 'cache.sqlite'}",
                "--set", f"generators.self_instruct.target={target}",
                "--set", "generators.self_instruct.requests_per_batch=4",
                "--set", "generators.self_instruct.tasks_per_batch=8",
                "--set", f"generators.pair_synthesis=[{{task: seeds/tasks/political_promises.yaml, n: {target}, "
                         "requests_per_batch: 4, max_batches: 6}]",
                # Evolutions and their answers shorter than make data's (160 and 256 tokens): the same calls,
                # less CI time.
                "--set", "generators.evol_instruct.sampling.max_tokens=120",
                "--set", "generators.evol_instruct.response_sampling.max_tokens=128"]

    # The estimate is of a run twice the size of the real one below: its half-size sample is exactly that run's
    # self-instruct and pair work and its first evolution round, so the real run after it finds those answers in
    # the cache (what the dry run promises) and generates only the second round itself.
    dry = sprout("data", *options("dry", 4), "--dry-run", "--sample-share", "0.5",
                 "--set", "backend.price={input_per_million: 0.15, output_per_million: 0.6, currency: EUR}")
    assert dry.returncode == 0, dry.stderr[-3000:]
    args = ["data", *options("run", 2)]
    first = sprout(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Warning" not in first.stderr, first.stderr[-3000:]  # a normal run prints no library warnings
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
    assert report["usage"]["cache_hits"] > 0 and report["usage"]["cache_hits"] > report["usage"]["calls"]


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
        # The default engine, on the weights `auto` picks for this CPU.
        assert lineage.model.startswith(f"llama.cpp:smollm2-135m-instruct.{engine_weights('auto')}.gguf:")
        assert lineage.task_id and len(lineage.seed_ids) >= 6 and lineage.prompts and lineage.sampling
        assert (record.kind == "classification") == (record.label is not None)
    assert len({r.lineage.task_id for r in grown}) == report["new_tasks"] == 2
    by_id = {r.id: r for r in records}
    for record in records:
        if record.lineage.generator == "evol_instruct":  # default config: the grown tasks are then evolved
            assert record.lineage.parent_ids[0] in by_id and record.output and record.lineage.operation
    assert "new tasks" in first.stdout and "Filter funnel" in first.stdout


def test_pair_synthesis_and_flan_run_inside_sprout_data(run):
    out, _, _, report, _, _ = run
    records = [Record.model_validate(json.loads(line)) for line in (out / "examples.jsonl").read_text().splitlines()]
    pairs = [r for r in records if r.lineage.generator == "pair_synthesis"]
    assert sorted(r.label for r in pairs) == ["False", "True"]  # the asked 50/50, exactly
    assert all(r.input and r.output == r.label and r.lineage.task_id == "task:political_promises" for r in pairs)
    (synthesis,) = report["synthesis"]
    assert synthesis["target"] == {"True": 1, "False": 1}
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


def test_evol_instruct_in_data_attempts_every_grown_task_in_every_round(run):
    out, first, _, report, _, _ = run
    rounds = report["evol_rounds"]["rounds"]
    assert [r["attempted"] for r in rounds] == [report["new_tasks"]] * 2  # the config's 2 rounds, every grown task
    for fates in rounds:
        assert fates["evolved"] + sum(fates["eliminated"].values()) == fates["attempted"]
    stage = report["stages"]["evolutions"]
    assert stage["entered"] == sum(r["attempted"] for r in rounds)
    assert "Evol-Instruct generations" in " ".join(first.stdout.split())


def test_alpaca_only_seeds_grow_with_sprouts_own_worked_examples(tmp_path):
    """A seed file of Alpaca rows (no is_classification flag) is accepted: its rows are non-classification tasks,
    and the classification judge's worked examples are borrowed from sprout's own seeds, which the run says."""
    topics = ["rivers", "bread", "volcanoes", "chess", "bees", "tides", "glass", "maps of stars", "clocks", "kites"]
    rows = [{"instruction": f"Write two plain sentences about {topic} for a curious child.", "input": "",
             "output": f"Here are two sentences about {topic}."} for topic in topics]
    seeds = tmp_path / "alpaca_seeds.json"
    seeds.write_text(json.dumps(rows))
    out = tmp_path / "run"
    # seed 2: of seeds 1-5 and the default 42, one of the two quickest to find its task (14 s against 51 s for 42)
    result = sprout("data", "--set", f"seeds=[{seeds}]", "--set", "seed=2", "--set", f"out_dir={out}",
                    "--set", f"cache={tmp_path / 'c.sqlite'}", "--set", "generators.self_instruct.target=1",
                    "--set", "generators.self_instruct.requests_per_batch=4",
                    "--set", "generators.self_instruct.tasks_per_batch=2", "--set", "generators.evol_instruct=null",
                    "--set", "generators.self_instruct.sampling.max_tokens=160",
                    "--set", "generators.self_instruct.instance_sampling.max_tokens=128",
                    "--set", "generators.pair_synthesis=[]", "--set", "generators.flan=null")
    assert result.returncode == 0, result.stderr[-3000:]
    said = " ".join((result.stdout + result.stderr).split())
    assert "seeds: 0 classification seed tasks; 4 of sprout's own (general.jsonl) are borrowed" in said
    report = json.loads((out / "report.json").read_text())
    assert report["new_tasks"] == 1 and report["seeds"] == 10
    user_seeds = {seed.id for seed in load_seeds([seeds])}
    grown = [Record.model_validate(json.loads(line)) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert grown and all(set(r.lineage.seed_ids) <= user_seeds for r in grown)  # proposals show only the user's


# ---- sprout inspect on this run, in a real headless Chromium -----------------------------------------------------

def test_inspect_page_in_headless_chromium(run, tmp_path):
    """Load the real run in the inspector: counts beside report.json, a facet, a search, a lineage walk, marks by
    keyboard, then `sprout curate` with those marks."""
    import shutil
    import subprocess
    import sys

    from tests.browser import chromium_page

    report = run[3]
    work = tmp_path / "run"  # a copy: the inspector writes its index and marks beside the run
    shutil.copytree(run[0], work)
    server = subprocess.Popen([sys.executable, "-m", "sprout", "inspect", str(work)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first_line = server.stdout.readline()
        assert first_line.startswith("sprout inspect: http://127.0.0.1:"), (first_line, server.poll() is not None
                                                                             and server.stderr.read()[-2000:])
        url = first_line.split()[2]
        with chromium_page() as (page, problems):
            page.goto(url)
            page.wait_for_selector("body[data-loaded]")
            assert "counts match report.json" in page.text_content("#check")
            total = report["examples"] + report["rejected"]
            assert page.text_content("#count") == f"{total} rows"
            assert len(page.query_selector_all("#rows tr")) == min(100, total)

            def after(action):
                before = page.evaluate("document.body.dataset.loaded")
                action()
                page.wait_for_function(f"document.body.dataset.loaded !== '{before}'")

            # a facet: the rejected rows, with each rule's count beside the report's
            after(lambda: page.check('input[data-facet="status"][data-value="rejected"]'))
            assert page.text_content("#count") == f"{report['rejected']} rows"
            assert {s.text_content() for s in page.query_selector_all("#rows .badge")} == {"rejected"}
            assert page.query_selector_all("#facets .report") and not page.query_selector_all("#facets .report.off")
            page.wait_for_selector("#why")  # the first reject's rule and reason
            # curate by keyboard: the first reject is good after all
            page.keyboard.press("g")
            page.wait_for_function("(document.body.dataset.marked || '').endsWith(':good')")
            rescued = page.evaluate("document.body.dataset.marked").split(":")[0]
            # lineage: an evolution, up to its parent and back down
            after(lambda: page.click("#clear"))
            after(lambda: page.check('input[data-facet="generator"][data-value="evol_instruct"]'))
            after(lambda: page.check('input[data-facet="status"][data-value="accepted"]'))
            page.wait_for_selector("#lineage .step a.walk")
            child_id = page.text_content("#detail h2").split()[-1]
            page.keyboard.press("b")  # this evolution is marked bad
            page.wait_for_function(f"document.body.dataset.marked === '{child_id}:bad'")
            page.click("#lineage .step a.walk")
            page.wait_for_function(f"!document.querySelector('#detail h2').textContent.endsWith('{child_id}')")
            assert page.query_selector(f'#lineage .child a.walk:text("{child_id}")')  # the parent lists the child
            assert page.query_selector("#lineage .prompts") and page.query_selector("#lineage .sampling")
            # a search: words of that evolution's instruction find it
            words = " ".join(next(json.loads(line) for line in (work / "examples.jsonl").read_text().splitlines()
                                  if json.loads(line)["id"] == child_id)["instruction"].split()[:4])
            after(lambda: page.click("#clear"))
            after(lambda: page.fill("#search", words))
            assert page.evaluate(f"state.rows.some((r) => r.id === '{child_id}')")
            page.screenshot(path=str(tmp_path / "inspect.png"))
            assert problems == []
    finally:
        server.terminate()
        server.wait(timeout=30)
    curated = sprout("curate", str(work), "--out", str(tmp_path / "curated.jsonl"))
    assert curated.returncode == 0, curated.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in (tmp_path / "curated.jsonl").read_text().splitlines()]
    assert child_id not in ids and rescued in ids and len(ids) == report["examples"]  # -1 bad, +1 good
    changes = json.loads((tmp_path / "curated.jsonl.report.json").read_text())
    assert (changes["removed"], changes["added"]) == (1, 1)
