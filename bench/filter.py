"""`sprout filter` on a user's dataset at full size: seconds and peak RSS, and exactness against rouge-score.

Two shapes of 50,000 rows each, written here from our own pools (bench/dedup.py's instruction corpus and phrase
lists of this file), never copied from a dataset:

- alpaca: distinct instructions (12% of them near-duplicates of earlier ones, as in bench/dedup.py), a third with an
  input, varied outputs; 4% of rows are near-copies of an earlier row in every field (one word changed).
- classification: a converted classification set: one instruction for every row, news-style inputs of 30-50 words
  (see _story), four labels; 2% of rows are the same story from a second feed (one word changed, same label).

Each shape runs `run_filter` (what `sprout filter DATA` runs, with configs/filter.yaml's defaults: dedup_on all, no
per-task cap) in a child process of its own, so its peak RSS (ru_maxrss) is its own; the child also reports its RSS
before reading the data (imports only), the baseline the figure is read against. Then, on the first `--ref-rows`
rows, the rouge_l rule alone is checked against pairwise rouge-score (each field scored with RougeScorer, a row a
near-duplicate when every field is, greedy in file order, the same definition): the kept rows must be identical,
and the speed ratio is printed. Writes bench/results/filter.json.

    python bench/filter.py [--rows 50000] [--ref-rows 1000] [--shapes alpaca classification]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "filter.json"
sys.path.insert(0, str(REPO / "bench"))

from dedup import AUDIENCES, CONSTRAINTS, TOPICS, _perturb, build_corpus  # noqa: E402

QUESTION = "Which topic is this news article about? Answer World, Sports, Business or Sci/Tech."
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
ACTORS = ["The city council", "A regional airline", "The national team", "Researchers at a small university",
          "The central bank", "A family-run bakery", "Farmers in the northern valley", "The new science museum",
          "Volunteers from the harbour district", "The transit authority", "A teenage sprinter", "Two rival carmakers",
          "The foreign ministry", "An online retailer", "Astronomers in Chile", "The league's oldest club"]
ACTIONS = ["announced", "postponed", "celebrated", "criticised", "launched", "reported", "approved", "rejected",
           "delayed", "defended", "unveiled", "questioned"]
OBJECTS = ["a plan to rebuild the old bridge", "record profits for the third quarter", "a trial of a new vaccine",
           "a fleet of electric buses", "the final match of the season", "a study of river pollution",
           "higher interest rates", "a festival of street food", "a cheaper season ticket", "a merger worth millions",
           "a telescope on the mountain", "new rules for drones", "a strike by night workers", "a faster chip"]
WHEN = ["on Monday", "late on Friday", "after a long debate", "despite protests", "ahead of the holidays",
        "in a surprise move", "after months of talks", "with little warning"]
DETAILS = ["Officials said more details would follow within days.", "Critics called the step overdue.",
           "Local groups warned about the costs.", "Analysts had expected the opposite.",
           "The decision can still be appealed.", "Reactions online were mixed.",
           "A spokesperson declined to comment further.", "Several experts urged caution.",
           "The figures have not been independently confirmed.", "Crowds gathered outside the building."]
SENTENCE_START = ["First,", "In short,", "Put simply,", "To begin with,", "Overall,", "As a rule,", "In practice,"]


SYLLABLES = "ka lo mi ne ru sa te vi do pa gre tor lin bas cor fen mar qui zel hob dus yan wep sol ith ber nox".split()
FUNCTION_WORDS = ("the of and to a in that is was for on with as by at from it his her their said has had have be "
                  "will not are this but which after").split()


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _vocabulary(seed: int = 42) -> tuple[list[str], list[float]]:
    """~24,000 invented content words with Zipf-like weights (rank^-1.05), as a newswire's vocabulary is spread."""
    rng = random.Random(seed)
    words = list(dict.fromkeys("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
                               for _ in range(40_000)))
    return words, list(itertools.accumulate(1 / (rank + 1) ** 1.05 for rank in range(len(words))))


CONTENT, CONTENT_WEIGHTS = _vocabulary()


def _story(rng: random.Random) -> str:
    """A news-style lead (a frame of our phrases, an invented place) and a body of 14-30 words, 40% function words
    and the rest content words drawn with Zipf-like frequencies: pairs of stories score about 0.2 on average and
    none above 0.7, as distinct as real articles, so the set's near-duplicates are the planted ones."""
    body = " ".join(rng.choice(FUNCTION_WORDS) if rng.random() < 0.4 else
                    rng.choices(CONTENT, cum_weights=CONTENT_WEIGHTS)[0] for _ in range(rng.randint(14, 30)))
    return (f"{rng.choice(ACTORS)} in {_name(rng)} {rng.choice(ACTIONS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)}: "
            f"{body}. Filed by {_name(rng)} {_name(rng)}.")


def _one_word_changed(text: str, rng: random.Random) -> str:
    words = text.split()
    k = rng.randrange(len(words))
    words[k] = rng.choice(["local", "major", "new", "small", "late"]) if words[k] != "local" else "regional"
    return " ".join(words)


def classification_rows(n: int, seed: int = 0) -> list[dict]:
    rng, rows = random.Random(seed), []
    while len(rows) < n:
        if rows and rng.random() < 0.02:  # the same story from a second feed
            source = rows[-rng.randint(1, min(500, len(rows)))]
            rows.append({**source, "input": _one_word_changed(source["input"], rng)})
        else:
            rows.append({"instruction": QUESTION, "input": _story(rng), "output": rng.choice(LABELS)})
    return rows


def alpaca_rows(n: int, seed: int = 0) -> list[dict]:
    rng, rows = random.Random(seed), []
    instructions = build_corpus(n, seed)
    for instruction in instructions:
        if rows and rng.random() < 0.04:  # a near-copy of an earlier row in every field
            source = rows[-rng.randint(1, min(500, len(rows)))]
            rows.append({key: _perturb(value, rng) if value else value for key, value in source.items()})
            continue
        has_input = rng.random() < 0.33
        output = (f"{rng.choice(SENTENCE_START)} {rng.choice(TOPICS)} matters to {rng.choice(AUDIENCES)}, "
                  f"{rng.choice(CONSTRAINTS)}. {rng.choice(DETAILS)} {_story(rng) if rng.random() < 0.5 else ''}")
        rows.append({"instruction": instruction, "input": _story(rng) if has_input else "", "output": output.strip()})
    return rows[:n]


SHAPES = {"alpaca": alpaca_rows, "classification": classification_rows}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(path: Path, out: Path) -> None:
    """One `sprout filter` run in this process: prints its figures as JSON."""
    import sprout.runs.filter
    from sprout.config.loader import load_config
    from sprout.runs.filter import FilterRunConfig, run_filter

    report_seconds = []
    finish = sprout.runs.filter.finish_run

    def timed_finish(*args, **kwargs):  # the reports (funnel, analytics) apart from the filtering
        started = time.perf_counter()
        finish(*args, **kwargs)
        report_seconds.append(time.perf_counter() - started)

    sprout.runs.filter.finish_run = timed_finish
    config = load_config(REPO / "configs" / "filter.yaml", [f"out_dir={out}", f"cache={out / 'c.sqlite'}"],
                         model=FilterRunConfig)
    before = _peak_mib()
    started = time.perf_counter()
    summary = run_filter(path, config, log=lambda *_: None)
    seconds = time.perf_counter() - started
    rules = {rule: tally["dropped"] for rule, tally in summary.stages["rows"]["rules"].items() if tally["dropped"]}
    print(json.dumps({"seconds": round(seconds, 2), "report_seconds": round(report_seconds[0], 2),
                      "peak_mib": round(_peak_mib()), "baseline_mib": round(before),
                      "kept": summary.examples, "rejected": summary.rejected, "dropped_by_rule": rules,
                      "warnings": summary.warnings}))


def reference_rows(rows: list[dict], threshold: float) -> list[int]:
    """Pairwise rouge-score, field by field (output first: the cheapest to tell apart), greedy in order."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def alike(a: str, b: str) -> bool:
        if not a.strip() or not b.strip():
            return not a.strip() and not b.strip()
        return scorer.score(a, b)["rougeL"].fmeasure > threshold

    kept: list[int] = []
    for k, row in enumerate(rows):
        if not any(all(alike(rows[j][f], row[f]) for f in ("output", "input", "instruction")) for j in kept):
            kept.append(k)
    return kept


def sprout_rows(rows: list[dict], threshold: float) -> list[int]:
    """The `rouge_l` rule alone, as `sprout filter` builds it (dedup_on: all), over the same rows."""
    from sprout.core.records import Lineage, Record
    from sprout.filters.build import build_stage
    from sprout.runs.filter import RowFilterConfig

    records = [Record(**row, lineage=Lineage(generator="input")) for row in rows]
    stage = build_stage("rows", ["rouge_l"], RowFilterConfig(rouge_l_threshold=threshold))
    accepted, _, _ = stage.run(records)
    kept = {id(r) for r in accepted}
    return [k for k, record in enumerate(records) if id(record) in kept]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--ref-rows", type=int, default=1_000, help="rows checked against pairwise rouge-score")
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--child", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return 0
    results, ok = {}, True
    with tempfile.TemporaryDirectory(prefix="sprout-bench-filter-") as folder:
        for shape in args.shapes:
            rows = SHAPES[shape](args.rows)
            path = Path(folder) / f"{shape}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            run = subprocess.run([sys.executable, __file__, "--child", str(path), str(Path(folder) / shape)],
                                 capture_output=True, text=True, check=True)
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            sample = rows[: args.ref_rows]
            t0 = time.perf_counter()
            ref = reference_rows(sample, 0.7)
            t_ref = time.perf_counter() - t0
            t0 = time.perf_counter()
            fast = sprout_rows(sample, 0.7)
            t_fast = time.perf_counter() - t0
            figures["reference"] = {"rows": len(sample), "kept": len(ref), "identical": ref == fast,
                                    "rouge_score_s": round(t_ref, 2), "sprout_s": round(t_fast, 3),
                                    "speedup": round(t_ref / t_fast, 1)}
            ok &= ref == fast
            results[shape] = figures
            print(f"{shape:>15}: {args.rows} rows -> kept {figures['kept']}, rejected {figures['rejected']} "
                  f"{figures['dropped_by_rule']} in {figures['seconds']} s (the reports "
                  f"{figures['report_seconds']} s of it); peak RSS {figures['peak_mib']} MiB (imports alone "
                  f"{figures['baseline_mib']} MiB)")
            print(f"{'':>15}  first {len(sample)} rows, rouge_l vs pairwise rouge-score: identical={ref == fast}, "
                  f"{t_ref:.1f} s vs {t_fast:.3f} s ({t_ref / t_fast:.0f}x)")
            for line in figures["warnings"]:
                print(f"{'':>15}  warning: {line}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                                   "machine": {"platform": platform.platform(), "python": platform.python_version()},
                                   "args": {k: v for k, v in vars(args).items() if k != "child"},
                                   "results": results}, indent=2) + "\n")
    if not ok:
        print("MISMATCH: the rouge_l rule kept a different set than pairwise rouge-score", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
