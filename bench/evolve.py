"""`sprout evolve` at full size: 10,000 rows x 4 rounds with an instant scripted model, so every second measured is
the pipeline's own (prompt building, parsing, the elimination rules and near-duplicate index, the judge's
bookkeeping, the response cache, the JSONL writes, the reports).

The rows are bench/dedup.py's instruction corpus (our own, 12% near-duplicates). The scripted model answers at once:
a rewrite is the instruction plus ten words of its own (a few carry a scaffold phrase, a few are cut at the length
limit), a response is a sentence, the equal judge says Equal for about one in ten. `run_evolve` runs as `sprout
evolve` does, with `Backends.get` handing out that model behind the real SQLite response cache. The pipeline's time
per attempt is the wall time minus the model's; the baseline, measured in the same run, is the floor of any tool
that writes the same lines: each attempt's record serialised with json.dumps and appended to a file. Every row is
checked to be accounted for: one line per attempt, attempts = rows x rounds, per-round fates that add up.
Writes bench/results/evolve.json.

    python bench/evolve.py [--rows 10000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "evolve.json"
sys.path.insert(0, str(REPO / "bench"))

from dedup import EXTRAS, FILLERS, NUMBERS, THINGS, build_corpus  # noqa: E402

from sprout.backends.base import Backend, Completion  # noqa: E402

ADDED = [f"{a} {b} {c}" for a in EXTRAS for b in THINGS for c in NUMBERS]  # varied endings for the rewrites


def _draw(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


class InstantModel(Backend):
    """Answers every prompt at once, deterministically from the prompt and the sampling seed."""

    model_id = "instant:bench"

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def generate(self, batch, sampling):
        started = time.perf_counter()
        out = [[self._answer(prompt, sampling) for _ in range(sampling.n)] for prompt in batch]
        self.seconds += time.perf_counter() - started
        self.calls += len(batch)
        return out

    def _answer(self, prompt, sampling) -> Completion:
        user = prompt[-1]["content"]
        draw = _draw(user, sampling.seed)
        if user.startswith("A: "):  # the equal judge
            return Completion("Equal" if draw % 10 == 0 else "Not Equal", "stop", 120, 2)
        if "Instruction:\n" in user:  # an evolving prompt: the instruction, ten more words
            instruction = user.rsplit("Instruction:\n", 1)[1].strip()
            ending = ADDED[draw % len(ADDED)]
            words = " ".join(FILLERS[(draw >> k) % len(FILLERS)] for k in range(3))
            text = f"{instruction} {words.capitalize()} {ending}"
            if draw % 50 == 0:
                text += " Add only 10 to 20 words."  # a scaffold leak the elimination must catch
            return Completion(text, "length" if draw % 40 == 1 else "stop", 180, 30)
        return Completion(f"A careful answer in {NUMBERS[draw % len(NUMBERS)]} steps about {user[:60]}.", "stop",
                          90, 40)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bare_writes(lines: list[str], path: Path) -> float:
    """The baseline: each line re-serialised with json.dumps and appended, as any tool writing them must."""
    started = time.perf_counter()
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)

    import sprout.backends.registry as registry
    from sprout.config.loader import load_config
    from sprout.runs.evolve import EvolveRunConfig, run_evolve

    model = InstantModel()
    cached = {}

    def get(self, config=None):  # Backends.get: the instant model behind the real response cache
        from sprout.backends.cache import CachedBackend

        if "main" not in cached:
            cached["main"] = CachedBackend(model, self.cache)
            self.open[self.main_config] = cached["main"]
        return cached["main"]

    registry.Backends.get = get
    import sprout.runs.evolve

    report_seconds, rounds_peak = [], []
    finish = sprout.runs.evolve.finish_run

    def timed_finish(*args, **kwargs):  # the reports (funnel, analytics) apart from the rounds
        rounds_peak.append(_peak_mib())
        started = time.perf_counter()
        finish(*args, **kwargs)
        report_seconds.append(time.perf_counter() - started)

    sprout.runs.evolve.finish_run = timed_finish
    rows = [{"instruction": text, "input": "", "output": "reference"} for text in build_corpus(args.rows, seed=1)]
    with tempfile.TemporaryDirectory(prefix="sprout-bench-evolve-") as folder:
        source, out = Path(folder) / "rows.jsonl", Path(folder) / "out"
        source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        config = load_config(REPO / "configs" / "evolve.yaml", [
            "backend={kind: openai, base_url: 'http://127.0.0.1:9/v1', model: bench}",
            f"cache={Path(folder) / 'cache.sqlite'}"],
            model=EvolveRunConfig, options={f"input={source}": "--input", f"out_dir={out}": "--out",
                                            f"evol_instruct.rounds={args.rounds}": "--rounds"})
        before = _peak_mib()
        started = time.perf_counter()
        summary = run_evolve(config, log=lambda *_: None)
        wall = time.perf_counter() - started
        peak = _peak_mib()
        lines = [*(out / "examples.jsonl").read_text().splitlines(), *(out / "rejected.jsonl").read_text().splitlines()]
        baseline = bare_writes(lines, Path(folder) / "bare.jsonl")
    attempts = args.rows * args.rounds
    rounds = summary.evol_rounds["rounds"]
    accounted = (len(lines) == attempts and [r["attempted"] for r in rounds] == [args.rows] * args.rounds
                 and all(r["evolved"] + sum(r["eliminated"].values()) == r["attempted"] for r in rounds)
                 and summary.evol_rounds["outcome"]["rows"] == args.rows)
    pipeline = wall - model.seconds
    rounds_s = pipeline - report_seconds[0]
    figures = {"rows": args.rows, "rounds": args.rounds, "attempts": attempts, "lines": len(lines),
               "accounted": accounted, "wall_s": round(wall, 2), "model_s": round(model.seconds, 2),
               "pipeline_s": round(pipeline, 2), "pipeline_ms_per_attempt": round(1000 * pipeline / attempts, 3),
               "rounds_s": round(rounds_s, 2), "rounds_ms_per_attempt": round(1000 * rounds_s / attempts, 3),
               "report_s": round(report_seconds[0], 2),
               "baseline_ms_per_attempt": round(1000 * baseline / attempts, 4),
               "ratio_to_baseline": round(pipeline / baseline, 1), "peak_mib": round(peak),
               "mib_before_the_run": round(before), "peak_mib_before_the_reports": round(rounds_peak[0]),
               "evolved": summary.examples, "eliminated": summary.rejected,
               "rounds_fates": rounds, "outcome": summary.evol_rounds["outcome"], "model_calls": model.calls}
    print(f"sprout evolve: {args.rows} rows x {args.rounds} rounds = {attempts} attempts -> {summary.examples} "
          f"evolved, {summary.rejected} eliminated; every row accounted for: {accounted}")
    print(f"  wall {wall:.1f} s, of which the instant model {model.seconds:.2f} s: pipeline "
          f"{1000 * pipeline / attempts:.2f} ms per attempt; baseline (json.dumps + append per line) "
          f"{1000 * baseline / attempts:.3f} ms: ratio {pipeline / baseline:.0f}x")
    print(f"  of the pipeline's time: the rounds {rounds_s:.1f} s ({1000 * rounds_s / attempts:.2f} ms per attempt: "
          f"prompts, parsing, rules, dedup, judge bookkeeping, cache, writes), the reports {report_seconds[0]:.1f} s")
    print(f"  peak RSS {peak:.0f} MiB: {before:.0f} MiB before the run (rows loaded), {rounds_peak[0]:.0f} MiB after "
          "the rounds (before the reports parse the instructions with spaCy)")
    for fates in rounds:
        print(f"  round {fates['round']}: {fates['attempted']} attempts, {fates['evolved']} evolved, "
              f"eliminated {fates['eliminated']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                                   "machine": {"platform": platform.platform(), "python": platform.python_version()},
                                   "results": figures}, indent=2) + "\n")
    return 0 if accounted else 1


if __name__ == "__main__":
    sys.exit(main())
