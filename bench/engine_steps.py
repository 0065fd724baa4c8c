"""What one model pass costs on this machine, per engine and precision: why the embedded engine's speed-up over
transformers differs from one CPU to another.

For each side, in a process of its own (thread pools do not mix; a precision this CPU cannot run kills only its
process, and the line says so): prefill of `--prompts` random 300-token prompts one at a time (prompt tokens/s),
then decode passes of 1, 4 and 16 sequences at a 300-token context (ms per pass, one token per sequence). Sides:
llama.cpp on the engine's weights (`weights: auto`, what sprout runs) and on f32 weights, transformers in fp32 (the
engine before issue 18, sprout's CPU precision) and in bf16 (what the CPU's matrix units, AMX, take). Plus one
576 x 1536 by 512 matrix product in fp32 and bf16 (GFLOP/s), the shape of the model's MLP on a prefill chunk.
Writes bench/results/engine_steps.json.

Why it matters: `make data` decodes at ~5 sequences per pass on average (its calls are small and sequential), where
a pass's cost is mostly reading the weights (llama.cpp) or per-layer Python overhead (transformers); prefill is
matrix products, where torch's kernels on a CPU with AMX outrun llama.cpp's several times.

    python bench/engine_steps.py [--threads 2] [--prompts 8] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTEXT, BATCHES = 300, (1, 4, 16)
SIDES = ("llama.cpp auto", "llama.cpp f32", "transformers fp32", "transformers bf16", "matmul")
# Not run unless asked (`--sides`): llama.cpp on the other weight types the engine can be given, the shipped q4_1
# among them. Whole calls, not single passes, decide what `weights: auto` picks: bench/weights.py.
EXTRA_SIDES = ("llama.cpp f16", "llama.cpp q8_0", "llama.cpp q4_1")


def matrix_flags() -> list[str]:
    """The CPU flags that decide which precision runs fastest here: AMX, AVX512-BF16 and AVX512-FP16."""
    from sprout.backends.model_store import cpu_flags

    return sorted(f for f in cpu_flags() if f.startswith("amx") or f in ("avx512_bf16", "avx512_fp16"))


def random_prompts(count: int, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(100, 40000) for _ in range(CONTEXT)] for _ in range(count)]


def llama_side(weights: str, threads: int, prompts: int, steps: int) -> dict:
    from sprout.backends.llama_engine import LlamaEngine
    from sprout.backends.model_store import prepare_engine_gguf

    gguf = prepare_engine_gguf(weights)
    engine = LlamaEngine(gguf, threads=threads, slots=max(BATCHES))
    started = time.perf_counter()
    for seq, tokens in enumerate(random_prompts(prompts), start=1):
        engine._decode([(t, k, seq % max(BATCHES) + 1, False) for k, t in enumerate(tokens)])
        engine.lc.llama_memory_seq_rm(engine.memory, seq % max(BATCHES) + 1, -1, -1)
    result = {"weights": gguf.name, "prefill_tokens_per_second": round(prompts * CONTEXT /
                                                                       (time.perf_counter() - started), 1)}
    for seq, tokens in enumerate(random_prompts(max(BATCHES), seed=1), start=1):
        engine._decode([(t, k, seq, False) for k, t in enumerate(tokens)])
    for batch in BATCHES:
        started = time.perf_counter()
        for step in range(steps):
            engine._decode([(100 + step, CONTEXT + step, seq, True) for seq in range(1, batch + 1)])
        result[f"decode_ms_batch_{batch}"] = round(1000 * (time.perf_counter() - started) / steps, 1)
        for seq in range(1, batch + 1):
            engine.lc.llama_memory_seq_rm(engine.memory, seq, CONTEXT, -1)
    engine.close()
    return result


def transformers_side(dtype_name: str, threads: int, prompts: int, steps: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from sprout.backends.decode import cache_keyword
    from sprout.backends.model_store import resolve_model

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("embedded", log=lambda *_: None),
                                                 dtype=getattr(torch, dtype_name)).eval()
    keyword = cache_keyword(model)

    def forward(ids, cache):
        return model(input_ids=ids, **{keyword: cache}, use_cache=True, logits_to_keep=1).logits[:, -1]

    result = {}
    with torch.inference_mode():
        forward(torch.tensor(random_prompts(1, seed=2)), DynamicCache(config=model.config))  # warm-up
        started = time.perf_counter()
        for tokens in random_prompts(prompts):
            forward(torch.tensor([tokens]), DynamicCache(config=model.config))
        result["prefill_tokens_per_second"] = round(prompts * CONTEXT / (time.perf_counter() - started), 1)
        for batch in BATCHES:
            cache = DynamicCache(config=model.config)
            chosen = forward(torch.tensor(random_prompts(batch, seed=1)), cache).argmax(-1, keepdim=True)
            started = time.perf_counter()
            for _ in range(steps):
                chosen = forward(chosen, cache).argmax(-1, keepdim=True)
            result[f"decode_ms_batch_{batch}"] = round(1000 * (time.perf_counter() - started) / steps, 1)
    return result


def matmul_side(threads: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    result = {}
    for name in ("float32", "bfloat16"):
        a, b = (torch.randn(512, 576, dtype=getattr(torch, name)), torch.randn(576, 1536, dtype=getattr(torch, name)))
        a @ b  # warm-up
        started = time.perf_counter()
        for _ in range(steps * 5):
            a @ b
        result[f"torch_{name}_gflops"] = round(2 * 512 * 576 * 1536 * steps * 5 / (time.perf_counter() - started)
                                               / 1e9, 1)
    return result


def measure(side: str, threads: int, prompts: int, steps: int) -> dict:
    if side == "matmul":
        return matmul_side(threads, steps)
    engine, precision = side.split()
    if engine == "llama.cpp":
        return llama_side(precision, threads, prompts, steps)
    return transformers_side({"fp32": "float32", "bf16": "bfloat16"}[precision], threads, prompts, steps)


def baseline_ratios(results: dict) -> dict:
    """How much faster sprout's engine is than the baseline (transformers fp32), per phase: above 1, llama.cpp wins."""
    base, ours = results.get("transformers fp32", {}), results.get("llama.cpp auto", {})
    if "failed" in base or "failed" in ours or not base or not ours:
        return {}
    ratios = {"prefill": round(ours["prefill_tokens_per_second"] / base["prefill_tokens_per_second"], 2)}
    for batch in BATCHES:
        key = f"decode_ms_batch_{batch}"
        ratios[f"decode_batch_{batch}"] = round(base[key] / ours[key], 2)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8, help="300-token prompts prefilled one at a time")
    parser.add_argument("--steps", type=int, default=30, help="decode passes per batch size")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help=f"comma-separated sides to run, of: {', '.join(SIDES + EXTRA_SIDES)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "engine_steps.json",
                        help="where the JSON goes (a run of other sides: give it a name of its own)")
    parser.add_argument("--side", choices=SIDES + EXTRA_SIDES, help=argparse.SUPPRESS)  # a child process's side
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.side, args.threads, args.prompts, args.steps)))
        return
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    unknown = sorted(set(sides) - set(SIDES + EXTRA_SIDES))
    if unknown:
        parser.error(f"unknown side(s) {', '.join(unknown)}; choose from: {', '.join(SIDES + EXTRA_SIDES)}")
    results = {}
    for side in sides:
        done = subprocess.run([sys.executable, __file__, "--side", side, "--threads", str(args.threads),
                               "--prompts", str(args.prompts), "--steps", str(args.steps)],
                              capture_output=True, text=True, cwd=REPO)
        results[side] = (json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else
                         {"failed": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"})
        print(f"{side:20} {results[side]}", flush=True)
    ratios = baseline_ratios(results)
    print(f"transformers fp32 (baseline) / llama.cpp auto: {ratios}")
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "cpu_matrix_flags": matrix_flags(),
              "threads": args.threads, "context": CONTEXT, "results": results, "ratios": ratios}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
