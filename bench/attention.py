"""The llama.cpp engine's attention on `make data`'s own calls: flash attention (the engine before 2026-12-03) vs
attention as two matrix products (the default since).

`sprout data --config configs/data.yaml` runs once with every model call recorded (bench/engine_replay.py; or the
calls of an earlier recording, `--calls FILE`, which this script writes with `--save-calls FILE`), then the same
calls are replayed in order on a fresh `LlamaCppBackend` per run, flash attention on and off, A B B A, no cache.
Each run: model seconds, the engine's prefill and decode seconds, tokens. Writes bench/results/attention.json.

Why it can differ by machine: llama.cpp's CPU flash-attention kernel walks a query row's KV cells one at a time
(f16 dot, exp, f16 multiply-add), a decode pass has one query row per sequence, while the plain path multiplies
whole matrices with the CPU's widest kernels.

    python bench/attention.py [--repeats 2] [--threads 2] [--calls FILE | --save-calls FILE] [--data-set K=V ...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

from engine_replay import add_call_arguments, describe, load_or_record_calls, replay, report_sides
from generation import abba

REPO = Path(__file__).resolve().parent.parent
SIDES = {"flash attention (before)": True, "two matrix products (now)": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, alternating A B B A ...")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    add_call_arguments(parser)
    args = parser.parse_args()

    from sprout.backends.config import LocalBackendConfig
    from sprout.backends.llama_backend import LlamaCppBackend
    from sprout.backends.model_store import engine_weights, prepare_embedded, prepare_engine_gguf

    calls, recording = load_or_record_calls(args)
    weights = engine_weights(LocalBackendConfig().weights)
    gguf, model_dir = prepare_engine_gguf(weights), prepare_embedded(log=print)
    names = list(SIDES)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for name in abba(tuple(names), args.repeats):
        backend = LlamaCppBackend(gguf, model_dir, threads=args.threads, flash_attn=SIDES[name])
        print(f"replaying {len(calls)} calls, {name} ...", flush=True)
        runs[name].append(replay(backend, calls))
        backend.close()
        print(f"  {runs[name][-1]}", flush=True)
    keys = ("seconds", "prefill_seconds", "decode_seconds")
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in keys} for name, rs in runs.items()}
    before, now = (medians[name] for name in names)
    ratios = {key: round(before[key] / now[key], 3) for key in keys}
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "threads": args.threads, "weights": weights, "recording": recording,
              "workload": describe(calls), "runs": runs, "medians": medians, "ratios": ratios}
    print(f"{len(calls)} calls, {weights} weights, {args.threads} threads; medians of {args.repeats} runs each:")
    report_sides(medians, "ratio (before / now)", ratios, result, "attention.json")

if __name__ == "__main__":
    main()
