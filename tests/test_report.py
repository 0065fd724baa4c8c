"""The filter report: numbers derived from a synthetic run, escaping of model output, atomic writes, and the HTML
page as headless Chromium shows it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from sprout.core.errors import UserError
from sprout.reports.report import build_report, write_reports
from tests.conftest import write

XSS = "<script>alert(1)</script>"

STAGES = {
    "tasks": {"entered": 221, "accepted": 111, "rules": {
        "word_count": {"checked": 215, "dropped": 0},
        "blacklist": {"checked": 215, "dropped": 4},
        "rouge_l": {"checked": 211, "dropped": 96},
        "parse:truncated": {"checked": 4, "dropped": 4},
        "not_needed": {"checked": 6, "dropped": 6},
    }},
    "instances": {"entered": 112, "accepted": 72, "rules": {
        "empty_output": {"checked": 100, "dropped": 6},
        "input_equals_output": {"checked": 94, "dropped": 2},
        "format_leak": {"checked": 92, "dropped": 20},
        "parse:no_instances": {"checked": 12, "dropped": 12},
    }},
}
REPORT = {
    "out_dir": "out/data", "seeds": 145, "target": 40, "new_tasks": 40, "examples": 72, "rejected": 110,
    "batches": 5, "seconds": 443.1, "stopped_early": False, "stages": STAGES,
    "histograms": {"rouge_l": {"edges": [round(i * 0.05, 2) for i in range(21)],
                               "counts": [0, 2, 9, 21, 30, 26, 17, 6, 3, 1, 0, 0, 0, 0, 4, 9, 14, 22, 27, 20]}},
    "usage": {"calls": 289, "cache_hits": 12, "prompt_tokens": 93851, "completion_tokens": 17033,
              "cached_prompt_tokens": 3120, "cached_completion_tokens": 604, "seconds": 401.5, "failed": 3,
              "failures": {"APITimeoutError": 2, "InternalServerError": 1},
              "by_model": {"openai:big-model": {
                  "self_instruct": {"calls": 280, "cache_hits": 12, "prompt_tokens": 90000, "completion_tokens": 16000,
                                    "cached_prompt_tokens": 3120, "cached_completion_tokens": 604, "seconds": 390.0,
                                    "cost": 0.25},
                  "equal": {"calls": 9, "cache_hits": 0, "prompt_tokens": 3851, "completion_tokens": 1033,
                            "cached_prompt_tokens": 0, "cached_completion_tokens": 0, "seconds": 11.5,
                            "cost": 0.0049}}},
              "cost": {"total": 0.2549, "saved_by_cache": 0.0091, "currency": "USD", "unpriced_models": []}},
}


def record(instruction: str, generator: str | None = "self_instruct", operation: str = "input_first", **extra) -> dict:
    row = {"id": instruction[:24] or "no-instruction", "instruction": instruction, "input": "", "output": "ok",
           "kind": "generation", **extra}
    if generator:
        row["lineage"] = {"generator": generator, "operation": operation, "task_id": "t1"}
    return row


EXAMPLES = [
    record("Summarize the paragraph in one sentence.", input="Rivers carry water to the sea.", output="Water flows."),
    record("List three prime numbers.", output="2, 3, 5"),
    record("Translate 'thank you' to French.", operation="output_first", output="merci"),
    record("Classify the sentiment.", input="I loved it", output="Positive", kind="classification", label="Positive"),
    record("Rewrite this sentence to be more formal.", generator="evol_instruct", operation="deepen",
           input="gonna be late", output="I will arrive late."),
]
REJECTS = [
    *({"rule": "rouge_l", "reason": f"ROUGE-L {score:.3f} > 0.7 with 'List three prime numbers.'", "score": score,
       "record": record(f"List {n} prime numbers.", output="")} for n, score in
      [("four", 0.857), ("five", 0.857), ("two", 0.8), ("six", 0.857), ("seven", 0.857)]),
    {"rule": "blacklist", "reason": f"contains 'script': {XSS}", "record": record(f"Explain {XSS} to a child.")},
    {"rule": "parse:truncated", "reason": "the model stopped mid-task", "record": record("", raw="Task: " + "x" * 999)},
    {"rule": "parse:truncated", "reason": "the model stopped mid-task", "record": record("", raw="Task: cut")},
    {"rule": "format_leak", "reason": "output contains 'Input:'", "record": record("Echo.", output="Input: a | b")},
    {"rule": "not_needed", "reason": "the target was met first", "record": record("Spare task.", "evol_instruct")},
    {"rule": "empty_output", "reason": "empty output", "record": record("Say nothing.", generator=None)},
]


def make_run(run_dir: Path, report: dict = REPORT) -> Path:
    """A run directory as `sprout data` leaves it, with a torn last line in rejected.jsonl (a kill mid-write)."""
    write(run_dir / "report.json", json.dumps(report, indent=2))
    write(run_dir / "examples.jsonl", "".join(json.dumps(row) + "\n" for row in EXAMPLES))
    torn = '{"rule": "rouge_l", "reason": "ROUGE-L 0.9'
    write(run_dir / "rejected.jsonl", "".join(json.dumps(row) + "\n" for row in REJECTS) + torn)
    return run_dir


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


def test_funnel_follows_the_rules_in_order_down_to_accepted(run_dir):
    funnel = build_report(run_dir)["funnel"]
    assert list(funnel) == ["tasks", "instances"]
    steps = funnel["tasks"]
    assert [s["rule"] for s in steps] == ["candidates", "word_count", "blacklist", "rouge_l", "parse:truncated",
                                          "not_needed", "accepted"]
    assert [s["remaining"] for s in steps] == [221, 221, 217, 121, 117, 111, 111]
    assert steps[2] == {"rule": "blacklist", "checked": 215, "dropped": 4, "pass_rate": round(211 / 215, 4),
                        "remaining": 217}
    assert steps[0]["pass_rate"] is None and steps[-1]["pass_rate"] == round(111 / 221, 4)
    for stage, steps in funnel.items():
        remaining = [s["remaining"] for s in steps]
        assert remaining == sorted(remaining, reverse=True)
        assert remaining[-2] == remaining[-1] == STAGES[stage]["accepted"]


def test_pass_rate_is_none_for_a_rule_that_checked_nothing(tmp_path):
    report = {"out_dir": "x", "stages": {"tasks": {"entered": 0, "accepted": 0,
                                                   "rules": {"rouge_l": {"checked": 0, "dropped": 0}}}}, "usage": {}}
    write(tmp_path / "report.json", json.dumps(report))
    assert [s["pass_rate"] for s in build_report(tmp_path)["funnel"]["tasks"]] == [None, None, None]


def test_per_generator_and_per_operation_counts(run_dir):
    report = build_report(run_dir)
    assert report["per_generator"] == {
        "evol_instruct": {"accepted": 1, "share": 0.2, "rejected": 1, "rejected_by_rule": {"not_needed": 1}},
        "self_instruct": {"accepted": 4, "share": 0.8, "rejected": 9, "rejected_by_rule": {
            "rouge_l": 5, "parse:truncated": 2, "blacklist": 1, "format_leak": 1}},
        "unknown": {"accepted": 0, "share": 0.0, "rejected": 1, "rejected_by_rule": {"empty_output": 1}},
    }
    assert report["per_operation"] == {"evol_instruct": {"deepen": 1},
                                       "self_instruct": {"input_first": 3, "output_first": 1}}


def test_drop_examples_are_the_first_three_per_rule_cut_short(run_dir):
    drops = build_report(run_dir)["drop_examples"]
    # rules in the order they ran (tasks, then instances), each with its first examples in file order
    assert list(drops) == ["blacklist", "rouge_l", "parse:truncated", "not_needed", "empty_output", "format_leak"]
    assert [d["instruction"] for d in drops["rouge_l"]] == ["List four prime numbers.", "List five prime numbers.",
                                                            "List two prime numbers."]
    assert [d["score"] for d in drops["rouge_l"]] == [0.857, 0.857, 0.8]
    assert all(len(examples) <= 3 for examples in drops.values())
    long_raw = drops["parse:truncated"][0]["raw"]
    assert long_raw.startswith("Task: xxx") and long_raw.endswith("…") and len(long_raw) <= 301
    assert drops["blacklist"][0] == {"reason": f"contains 'script': {XSS}", "instruction": f"Explain {XSS} to a child.",
                                     "input": "", "output": "ok", "raw": "", "score": None}


def test_totals_count_readable_lines_and_unreadable_ones_apart(run_dir):
    report = build_report(run_dir)
    assert report["totals"] == {"accepted": 5, "rejected": 11, "pass_rate": round(5 / 16, 4)}
    assert report["unreadable_lines"] == {"examples.jsonl": 0, "rejected.jsonl": 1}


def test_the_runs_own_keys_are_kept_as_they_were(run_dir):
    report = build_report(run_dir)
    assert {key: report[key] for key in REPORT} == REPORT
    write_reports(run_dir)  # report.json now holds derived keys; building again recomputes, never doubles them
    assert build_report(run_dir) == report
    rewritten = json.loads((run_dir / "report.json").read_text())
    assert rewritten == report and list(rewritten["stages"]["tasks"]["rules"]) == list(STAGES["tasks"]["rules"])


def test_write_reports_is_atomic_and_repeatable(run_dir):
    paths = write_reports(run_dir)
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    first = {p.name: p.read_bytes() for p in paths}
    write_reports(run_dir)
    assert {p.name: p.read_bytes() for p in paths} == first
    assert sorted(p.name for p in run_dir.iterdir()) == ["examples.jsonl", "rejected.jsonl", "report.html",
                                                        "report.json", "report.md"]  # no temp file left behind


def test_markdown_has_the_funnel_tables(run_dir):
    write_reports(run_dir)
    md = (run_dir / "report.md").read_text()
    assert "| rule | checked | dropped | pass rate | remaining |" in md
    assert "| blacklist | 215 | 4 | 98.1% | 217 |" in md
    assert "| rouge_l | 211 | 96 | 54.5% | 121 |" in md
    assert "| **accepted** | 221 | 110 | 50.2% | 111 |" in md
    assert "| **accepted** | 112 | 40 | 64.3% | 72 |" in md
    assert "| self_instruct | 4 | 80.0% | 9 |" in md and "289 new, 12 from cache" in md
    assert "| openai:big-model | self_instruct | 280 | 12 | 90,000 | 16,000 | 3,120 / 604 | 6m 30s | 0.2500 USD |" in md
    assert "- cost: 0.2549 USD (0.0091 USD saved by the cache)" in md
    assert "- failed after retries: 3 (APITimeoutError 2, InternalServerError 1)" in md
    assert "1 unreadable line(s) in rejected.jsonl" in md
    assert "Input: a | b" in md  # model text sits in a code fence, where a pipe breaks nothing


def test_html_escapes_model_output_and_loads_nothing_from_outside(run_dir):
    write_reports(run_dir)
    page = (run_dir / "report.html").read_text()
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert not re.search(r"""\b(src|href)\s*=|url\(|@import|<link\b|<iframe\b""", page, re.IGNORECASE)
    # a funnel per stage, drops per rule, the ROUGE-L histogram; diversity: nearest-neighbour ROUGE-L, two lengths
    assert page.count("<svg") == 7
    assert "Failed requests" in page and "APITimeoutError 2" in page
    assert "0.2549 USD" in page and "<td><code>equal</code></td>" in page and "0.0049 USD" in page


def test_a_run_without_optional_keys_or_jsonl_still_reports(tmp_path):
    write(tmp_path / "report.json", json.dumps({"out_dir": "old", "stages": STAGES, "usage": {}}))
    report = build_report(tmp_path)
    assert report["totals"] == {"accepted": 0, "rejected": 0, "pass_rate": None}
    assert report["per_generator"] == {} and report["drop_examples"] == {}
    write_reports(tmp_path)
    assert "No model calls recorded" in (tmp_path / "report.md").read_text()
    assert 'id="rouge-l"' not in (tmp_path / "report.html").read_text()


def test_a_directory_without_report_json_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="report.json not found"):
        build_report(tmp_path)
    write(tmp_path / "report.json", '{"out_dir": ')
    with pytest.raises(UserError, match="not valid JSON"):
        build_report(tmp_path)


# ---- in a browser ----------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after load, and the page's console messages: with --enable-logging=stderr Chromium logs each one
    (console.* calls and uncaught exceptions alike) as a line with ':CONSOLE' in it."""
    from tests.browser import chromium_binary

    result = subprocess.run([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                             page.as_uri()], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_html_report_in_headless_chromium(run_dir, tmp_path):
    # First prove the console channel works on this Chromium, or "no messages" below would prove nothing.
    canary = write(tmp_path / "canary.html", "<!doctype html><p>x</p><script>console.error('CANARY-ERROR');"
                                             "notDefined();</script>")
    _, console = open_in_chromium(canary, tmp_path / "profile-canary")
    assert any("CANARY-ERROR" in line for line in console), console
    assert any("notDefined is not defined" in line for line in console), console

    write_reports(run_dir)
    dom, console = open_in_chromium(run_dir / "report.html", tmp_path / "profile")
    assert console == []
    funnel = dom[dom.index('id="funnel"'):]
    funnel = funnel[:funnel.index("</section>")]
    assert funnel.count("<table") == 2
    for rule in [*STAGES["tasks"]["rules"], *STAGES["instances"]["rules"]]:
        assert f"<td>{rule}</td>" in funnel
    assert "<script" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_evolution_rounds_are_reported_per_round_and_operation(tmp_path):
    from sprout.reports.report import build_report, write_reports

    (tmp_path / "report.json").write_text(json.dumps({"out_dir": str(tmp_path), "stages": {}, "usage": {}}))

    def record(rnd, op):
        return {"instruction": f"x {rnd} {op}", "lineage": {"generator": "evol_instruct", "round": rnd,
                                                             "operation": op, "parent_ids": ["p"]}}

    examples = [record(0, "deepen"), record(0, "deepen"), record(1, "breadth")]
    rejects = [{"rule": "judge:equal", "reason": "equal", "record": record(0, "deepen")},
               {"rule": "refusal", "reason": "sorry", "record": record(1, "breadth")}]
    (tmp_path / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in examples))
    (tmp_path / "rejected.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    assert build_report(tmp_path)["evolution"] == [
        {"round": 0, "operation": "deepen", "attempted": 3, "survived": 2, "eliminated": {"judge:equal": 1}},
        {"round": 1, "operation": "breadth", "attempted": 2, "survived": 1, "eliminated": {"refusal": 1}}]
    write_reports(tmp_path)
    assert "| 0 | deepen | 3 | 2 | judge:equal 1 |" in (tmp_path / "report.md").read_text()
    assert 'id="evolution"' in (tmp_path / "report.html").read_text()
