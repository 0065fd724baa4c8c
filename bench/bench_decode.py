"""Local backend decode loop vs transformers' `model.generate`, same batches, same model, same run.

Workload: real Self-Instruct prompts (list continuation and instance writing) on the embedded model, greedy,
end-of-turn honoured, a 256-token budget — so rows end at different times, as they do in `sprout data`.
Baselines: `generate` one prompt at a time, and `generate` on the same left-padded batches (rows that finished
stay in the batch until the longest ends). Measured: sprout's loop, which drops finished rows.
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import torch

from sprout.backends.base import Sampling
from sprout.backends.decode import sample_batch
from sprout.backends.local import LocalBackend
from sprout.backends.model_store import prepare_embedded
from sprout.core.prompts import load_prompt
from sprout.core.seeds import load_seeds


def workload(count: int) -> list[list[dict]]:
    seeds = load_seeds(["seeds/general.jsonl"])
    rng = random.Random(0)
    tasks, instances = load_prompt("self_instruct/new_tasks"), load_prompt("self_instruct/input_first")
    prompts = []
    for i in range(count):
        if i % 2:
            shown = rng.sample(seeds, 2)
            prompts.append(instances.render(examples=[{"instruction": s.instruction, "instances": s.instances}
                                                      for s in shown],
                                            task=rng.choice(seeds).instruction, max_instances=5))
        else:
            prompts.append(tasks.render(tasks=[s.instruction for s in rng.sample(seeds, 8)]))
    return prompts


def batches(backend: LocalBackend, texts: list[str], batch_size: int):
    for start in range(0, len(texts), batch_size):
        yield backend.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                add_special_tokens=False)


def with_generate(backend: LocalBackend, texts: list[str], sampling: Sampling, batch_size: int) -> int:
    tokens = 0
    sample = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": None} \
        if sampling.temperature > 0 else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    for encoded in batches(backend, texts, batch_size):
        with torch.inference_mode():
            out = backend.model.generate(**encoded, max_new_tokens=sampling.max_tokens,
                                         pad_token_id=backend.tokenizer.pad_token_id, **sample)
        new = out[:, encoded["input_ids"].shape[1]:]
        tokens += int((new != backend.tokenizer.pad_token_id).sum()) + len(new)  # + the end token of each row
    return tokens


def with_sprout(backend: LocalBackend, texts: list[str], sampling: Sampling, batch_size: int) -> int:
    return sum(len(row.tokens) for encoded in batches(backend, texts, batch_size)
               for row in sample_batch(backend.model, backend.tokenizer, encoded, sampling, backend._eos_ids()))


def timed(label: str, fn) -> float:
    started = time.perf_counter()
    tokens = fn()
    seconds = time.perf_counter() - started
    print(f"{label:<34} {seconds:7.1f} s  {tokens:6d} tokens  {tokens / seconds:6.1f} tok/s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="0 = greedy (both sides write the same tokens); >0 samples, as sprout data does")
    parser.add_argument("--sequential", action="store_true", help="also time generate() one prompt at a time")
    args = parser.parse_args()

    backend = LocalBackend(prepare_embedded(), batch_size=args.batch_size, threads=args.threads)
    texts = sorted((backend.render(m) for m in workload(args.prompts)), key=len)
    sampling = Sampling(temperature=args.temperature, top_p=0.9, max_tokens=args.max_tokens)
    mode = "greedy" if args.temperature <= 0 else f"temperature {args.temperature}, top_p 0.9"
    print(f"{args.prompts} prompts, batch {args.batch_size}, {mode}, max {args.max_tokens} tokens, "
          f"{args.threads} threads")
    if args.sequential:
        timed("baseline: generate, batch 1", lambda: with_generate(backend, texts, sampling, 1))
    base = timed(f"baseline: generate, batch {args.batch_size}",
                 lambda: with_generate(backend, texts, sampling, args.batch_size))
    ours = timed(f"sprout: drop-finished, batch {args.batch_size}",
                 lambda: with_sprout(backend, texts, sampling, args.batch_size))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"speed-up vs generate (same batches): {base / ours:.2f}x   peak RSS {peak:.2f} GB")


if __name__ == "__main__":
    main()
