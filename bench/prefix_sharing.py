"""The llama.cpp engine on an Evol-Instruct round: prompt prefixes copied from requests in flight vs the call-wide
prefix only.

One real call as `sprout evolve` makes it: the first `--rows` seed instructions of seeds/general.jsonl, row i evolved
by operation i mod 6 (so the prompts share only the chat template's first tokens call-wide, and an operation's
~140-token header within its rows), rendered with the embedded model's chat template, sampled as configs/evolve.yaml
samples rewrites. Baseline: the engine as it was before (`copy_in_flight=False`: the call-wide prefix computed once,
the rest of every prompt prefilled by its request, call order). Measured: the default engine (a request copies the
stream of one in flight that has more of its prompt computed; token order). Both on the same weights and threads,
A B B A; wall time per call, the engine's prefill and decode seconds, prompt tokens computed. Writes
bench/results/prefix_sharing.json.

    python bench/prefix_sharing.py [--rows 24] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def evolution_prompts(rows: int) -> list[list[int]]:
    from transformers import PreTrainedTokenizerFast

    from sprout.backends.model_store import resolve_model
    from sprout.core.prompts import load_prompt
    from sprout.core.seeds import load_seeds
    from sprout.generators.evol_instruct.config import EVOL_OPERATIONS

    tokenizer = PreTrainedTokenizerFast.from_pretrained(resolve_model("embedded", log=lambda *_: None))
    seeds = load_seeds([REPO / "seeds" / "general.jsonl"])[:rows]
    texts = [tokenizer.apply_chat_template(load_prompt(f"evol/{EVOL_OPERATIONS[i % 6]}").render(
        instruction=seed.instruction), tokenize=False, add_generation_prompt=True) for i, seed in enumerate(seeds)]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=24, help="rows of the round (one call)")
    parser.add_argument("--max-tokens", type=int, default=96, help="rewrite budget")
    args = parser.parse_args()

    from sprout.backends.base import Sampling
    from sprout.backends.llama_backend import _cores
    from sprout.backends.llama_engine import LlamaEngine, Request
    from sprout.backends.model_store import engine_weights, prepare_engine_gguf

    prompts = evolution_prompts(args.rows)
    gguf = prepare_engine_gguf(engine_weights("auto"))
    engines = {"call-wide prefix (before)": LlamaEngine(gguf, threads=_cores(), copy_in_flight=False),
               "copies from requests in flight": LlamaEngine(gguf, threads=_cores())}
    sampling = Sampling(temperature=0.7, top_p=0.95, max_tokens=args.max_tokens, seed=1)
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    for name in (*engines, *reversed(engines)):  # A B B A
        engine = engines[name]
        engine.phase_seconds.update(prefill=0.0, decode=0.0)
        engine.prefilled = 0
        started = time.perf_counter()
        finished = engine.run([Request(p, i) for i, p in enumerate(prompts)], sampling, set(), lambda new: False)
        runs[name].append({"wall_s": time.perf_counter() - started, **engine.phase_seconds,
                           "prompt_tokens_computed": engine.prefilled,
                           "generated": sum(len(row.tokens) for row in finished)})
    summary = {name: {key: round(statistics.median(r[key] for r in results), 3) for key in results[0]}
               for name, results in runs.items()}
    before, after = summary.values()
    ratios = {"wall": before["wall_s"] / after["wall_s"], "prefill": before["prefill"] / after["prefill"],
              "decode": before["decode"] / after["decode"],
              "prompt_tokens_computed": before["prompt_tokens_computed"] / after["prompt_tokens_computed"]}
    print(f"one Evol-Instruct call: {len(prompts)} rows, {sum(map(len, prompts)):,} prompt tokens, "
          f"{engine_weights('auto')} weights, {_cores()} threads")
    for name, figures in summary.items():
        print(f"  {name:32} {figures['wall_s']:6.2f} s  (prefill {figures['prefill']:.2f} s, decode "
              f"{figures['decode']:.2f} s; {int(figures['prompt_tokens_computed']):,} prompt tokens computed)")
    print("  ratios (before / now): " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    out = REPO / "bench" / "results" / "prefix_sharing.json"
    out.write_text(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": {"platform": platform.platform(), "python": platform.python_version()},
                               "rows": len(prompts), "prompt_tokens": sum(map(len, prompts)), "runs": runs,
                               "median": summary, "ratios": {k: round(v, 3) for k, v in ratios.items()}},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
