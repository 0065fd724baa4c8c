"""Figure 4 of bench/generation.py: the embedded model's engines on `make data`'s own model calls.

1. Record: `sprout data --config configs/data.yaml` runs in this process on a fresh cache and out folder, with the
   default engine (llama.cpp), and every call it makes to the model (prompts, sampling, who asked) is logged.
   `--data-set KEY=VALUE` scales the run down (e.g. generators.self_instruct.target=10) for a quick look; the
   figure for the README is the default config, whole.
2. Replay: the same calls, in order, on transformers (today's engine until issue 18: `LocalBackend`, batch 32) and on
   llama.cpp (`LlamaCppBackend`), A B B A, with no cache. Each side is timed per call; each engine also times its
   two phases: prefill (the passes that read prompt tokens) and decode (the passes that only write).

Model time is what `make data` spends inside model calls; the rest of a run (parsing, filters, files) is the same
for both engines and is reported from the recording run.
"""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from generation import Recorder

REPO = Path(__file__).resolve().parent.parent


class CallLog(Recorder):
    """generation.py's Recorder (each call, its seconds and tokens), owning its backend: closed with it."""

    def close(self) -> None:
        self.inner.close()


def record_make_data(overrides: list[str]) -> dict:
    """Run `sprout data` on configs/data.yaml (plus overrides) with the default engine, logging every model call."""
    from sprout.backends import registry
    from sprout.config.loader import load_config
    from sprout.runs.data import run_data

    logs: list[CallLog] = []
    build = registry.KINDS["local"].build

    def logged(config, model_dir, log):
        logs.append(CallLog(build(config, model_dir, log)))
        return logs[-1]

    registry.KINDS["local"] = registry.Kind(logged, registry.KINDS["local"].find, registry.KINDS["local"].check)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(REPO / "configs" / "data.yaml",
                                 [*overrides, f"out_dir={tmp}/out", f"cache={tmp}/cache.sqlite"])
            started = time.perf_counter()
            summary = run_data(config, log=lambda *a, **k: None)
            wall = time.perf_counter() - started
    finally:
        registry.KINDS["local"] = registry.Kind(build, registry.KINDS["local"].find, registry.KINDS["local"].check)
    calls = [call for log in logs for call in log.calls]
    usage = summary.usage
    return {"calls": calls, "run_seconds": round(wall, 1), "model_seconds": round(sum(log.seconds for log in logs), 1),
            "examples": summary.examples, "rejected": summary.rejected, "work": summary.work,
            "samples": usage.get("calls"), "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            # this process so far: the make data run, before either replay loads anything
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "engine": logs[0].model_id if logs else None}


def add_call_arguments(parser) -> None:
    """The options of a benchmark that replays make data's calls: record them afresh, or reuse a recording."""
    parser.add_argument("--calls", type=Path, help="replay the calls saved by an earlier --save-calls")
    parser.add_argument("--save-calls", type=Path, help="keep this run's recorded calls for a later --calls")
    parser.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of configs/data.yaml for the recorded run (a quick look: "
                             "generators.self_instruct.target=10)")


def load_or_record_calls(args) -> tuple[list, dict]:
    """make data's calls (from --calls, or recorded now and kept in --save-calls) and what the recording was."""
    import pickle

    if args.calls:
        return pickle.loads(args.calls.read_bytes()), {"calls_file": str(args.calls)}
    print("recording make data's model calls (default engine, fresh cache) ...", flush=True)
    recording = record_make_data(args.data_set)
    calls = recording.pop("calls")
    if args.save_calls:
        args.save_calls.write_bytes(pickle.dumps(calls))
    return calls, recording


def report_sides(figures: dict, ratio_label: str, ratios: dict, result: dict, out_name: str) -> None:
    """Print each side's model, prefill and decode seconds and the ratio; write `result` to bench/results."""
    width = max(len(name) for name in figures)
    for name, side in figures.items():
        print(f"  {name:{width}} {side['seconds']:8.1f} s  (prefill {side['prefill_seconds']:.1f} s, decode "
              f"{side['decode_seconds']:.1f} s)")
    print(f"  {ratio_label}: {ratios['seconds']:.2f}x  (prefill {ratios['prefill_seconds']:.2f}x, decode "
          f"{ratios['decode_seconds']:.2f}x)")
    out = REPO / "bench" / "results" / out_name
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


def describe(calls) -> dict:
    samples = sum(len(batch) * sampling.n for batch, sampling in calls)
    kinds = Counter((sampling.max_tokens, sampling.temperature, len(batch)) for batch, sampling in calls)
    return {"calls": len(calls), "samples": samples,
            "shapes": [{"max_tokens": m, "temperature": t, "prompts": p, "calls": c}
                       for (m, t, p), c in sorted(kinds.items())]}


def replay(backend, calls) -> dict:
    """Every call in order; seconds, tokens and the engine's own phase clock."""
    backend.phase_seconds.update(prefill=0.0, decode=0.0)
    prompt_tokens = completion_tokens = 0
    started = time.perf_counter()
    for batch, sampling in calls:
        for row in backend.generate(batch, sampling):
            for completion in row:
                prompt_tokens += completion.prompt_tokens
                completion_tokens += completion.completion_tokens
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "prefill_seconds": round(backend.phase_seconds["prefill"], 2),
            "decode_seconds": round(backend.phase_seconds["decode"], 2), "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens}


def engine_figure(overrides: list[str], repeats: int, threads: int, abba) -> dict:
    from sprout.backends.config import LocalBackendConfig
    from sprout.backends.llama_backend import LlamaCppBackend
    from sprout.backends.local import LocalBackend
    from sprout.backends.model_store import engine_weights, prepare_embedded, prepare_engine_gguf

    print("4a: recording make data's model calls (default engine, fresh cache) ...", flush=True)
    recorded = record_make_data(overrides)
    calls = recorded.pop("calls")
    model_dir = prepare_embedded(log=print)
    weights = engine_weights(LocalBackendConfig().weights)
    engines = {"transformers": lambda: LocalBackend(model_dir, threads=threads),
               "llama.cpp": lambda: LlamaCppBackend(prepare_engine_gguf(weights), model_dir, threads=threads)}
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    for side in abba(("transformers", "llama.cpp"), repeats):
        print(f"4b: replaying {len(calls)} calls on {side} ...", flush=True)
        backend = engines[side]()  # a fresh engine per run: no state carried from the run before
        runs[side].append(replay(backend, calls))
        backend.close()
    medians = {side: {key: statistics.median(r[key] for r in rs) for key in ("seconds", "prefill_seconds",
                                                                            "decode_seconds")}
               for side, rs in runs.items()}
    old, new = medians["transformers"], medians["llama.cpp"]
    return {"overrides": overrides, "recording": recorded, "workload": describe(calls), "weights": weights,
            "runs": runs, "medians": medians,
            "ratio": round(old["seconds"] / new["seconds"], 3),
            "prefill_ratio": round(old["prefill_seconds"] / new["prefill_seconds"], 3),
            "decode_ratio": round(old["decode_seconds"] / new["decode_seconds"], 3)}
