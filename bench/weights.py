"""The llama.cpp engine's weight types on `make data`'s own calls: which one `weights: auto` should pick on this CPU.

`sprout data --config configs/data.yaml` runs once with every model call recorded (bench/engine_replay.py; or an
earlier recording, `--calls FILE`, as bench/attention.py writes with `--save-calls FILE`). The same calls are then
replayed on two `LlamaCppBackend`s, one per weight type (default: bf16 and f16, the two `auto` chooses between),
both loaded for the whole run, **interleaved call by call**: call 1 on A then B, call 2 on B then A, and so on. This
machine's speed drifts by 20-25% within an hour, and by 2x across a day; side by side per call, a drift weighs on
both sides alike even in a run of 20 minutes. Each side: model seconds, prefill and decode seconds, tokens. Writes
bench/results/weights.json.

Why it differs by CPU: the f16 and bf16 kernels of llama.cpp (llamafile's tinyBLAS) are different code paths; on
2 cores bf16 prefilled ~1.4x faster than f16 on an AVX512-BF16 CPU without AMX (2026-12-02), and f16 was the faster
of the two on a Sapphire Rapids one with AMX (2026-12-03). `model_store.engine_weights` encodes what was measured.

    python bench/weights.py [--weights bf16,f16] [--repeats 1] [--threads 2] [--calls FILE | --save-calls FILE]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from engine_replay import add_call_arguments, describe, load_or_record_calls, report_sides
from engine_steps import matrix_flags

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = ("f16", "bf16", "q8_0", "q4_1")


def interleaved(backends: dict, calls, repeats: int) -> dict:
    """Every call on every side, the side that goes first alternating from call to call; totals per side."""
    names = list(backends)
    totals = {name: {"seconds": 0.0, "prompt_tokens": 0, "completion_tokens": 0} for name in names}
    for backend in backends.values():
        backend.phase_seconds.update(prefill=0.0, decode=0.0)
    turn = 0
    for _ in range(repeats):
        for batch, sampling in calls:
            for name in names if turn % 2 == 0 else names[::-1]:
                started = time.perf_counter()
                rows = backends[name].generate(batch, sampling)
                totals[name]["seconds"] += time.perf_counter() - started
                for completion in (c for row in rows for c in row):
                    totals[name]["prompt_tokens"] += completion.prompt_tokens
                    totals[name]["completion_tokens"] += completion.completion_tokens
            turn += 1
    for name, backend in backends.items():
        totals[name] = {"seconds": round(totals[name]["seconds"], 2),
                        "prefill_seconds": round(backend.phase_seconds["prefill"], 2),
                        "decode_seconds": round(backend.phase_seconds["decode"], 2),
                        "prompt_tokens": totals[name]["prompt_tokens"],
                        "completion_tokens": totals[name]["completion_tokens"]}
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="bf16,f16", help=f"two weight types, A,B (of {', '.join(WEIGHTS)})")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the calls")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    add_call_arguments(parser)
    args = parser.parse_args()
    names = [w.strip() for w in args.weights.split(",")]
    if len(names) != 2 or len(set(names)) != 2 or not set(names) <= set(WEIGHTS):
        parser.error(f"--weights takes two different types of {', '.join(WEIGHTS)}, e.g. bf16,f16")

    from sprout.backends.llama_backend import LlamaCppBackend
    from sprout.backends.model_store import engine_weights, prepare_embedded, prepare_engine_gguf

    calls, recording = load_or_record_calls(args)
    model_dir = prepare_embedded(log=print)
    backends = {name: LlamaCppBackend(prepare_engine_gguf(name), model_dir, threads=args.threads) for name in names}
    print(f"replaying {len(calls)} calls on {' and '.join(names)}, interleaved call by call ...", flush=True)
    totals = interleaved(backends, calls, args.repeats)
    for backend in backends.values():
        backend.close()
    first, second = (totals[name] for name in names)
    keys = ("seconds", "prefill_seconds", "decode_seconds")
    ratios = {key: round(first[key] / second[key], 3) for key in keys}  # above 1: the second side is faster
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "cpu_matrix_flags": matrix_flags(),
              "auto_picks": engine_weights("auto"), "threads": args.threads, "repeats": args.repeats,
              "recording": recording, "workload": describe(calls), "totals": totals,
              f"ratios_{names[0]}_over_{names[1]}": ratios}
    print(f"{len(calls)} calls x {args.repeats}, {args.threads} threads; `weights: auto` picks "
          f"{result['auto_picks']} on this CPU ({', '.join(result['cpu_matrix_flags']) or 'no AMX / bf16 flags'}):")
    tokens = ", ".join(f"{name} {side['completion_tokens']}" for name, side in totals.items())
    print(f"  tokens written: {tokens}")
    report_sides(totals, f"{names[0]} / {names[1]}", ratios, result, "weights.json")


if __name__ == "__main__":
    main()
