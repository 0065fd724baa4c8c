"""Generation throughput: sprout's backends and pipeline vs their plain baselines, same prompts, same run.

Four ratios, each measured in one run on one machine (embedded SmolLM2-135M-Instruct, 2 threads). Figures 1-3 are
the transformers path (CPU fp32); figure 4 is the embedded model's engines on `make data`'s own calls:

1. Local batching. `LocalBackend` at `--batch` (sprout's default 32) vs the same backend one prompt at a time
   (batch 1), on the same chat prompts (seed-task instructions from seeds/general.jsonl) with the same sampling
   (temperature 0.7, top_p 0.9, fixed seed, `--max-tokens`). Sampled rows end at different lengths, and the two
   sides draw different samples (the seed is per chunk), so the figure is completion tokens per wall second,
   not wall time. Goal >= 4x.
2. Pipeline overhead. One whole Self-Instruct batch as `sprout data` runs it (`SelfInstruct.run_batch`: proposal
   prompts, list parsing, task filters with ROUGE-L, the classification judge, instance prompts and parsing,
   instance filters, records with lineage), through `CachedBackend` on a fresh SQLite cache, with the recipe's
   own sampling; half a default batch (`--si-requests 4`, `--si-tasks 8`; sprout's defaults are 8 and 16) to
   keep the run short. A thin recorder between the cache and the `LocalBackend` logs every (batch, sampling) the
   pipeline sends; the baseline replays exactly those calls on the bare backend (same instance, same batch
   size; same seeds, so the same tokens — checked). Ratio = completion tokens per wall second of the whole
   sprout step / of the bare replay. Goal >= 0.90.
3. OpenAI-compatible client. A real `transformers serve` on a loopback port (started here, stopped at the end,
   even on error) with the embedded model; sprout's `OpenAIBackend` vs a plain `openai.AsyncOpenAI` +
   `asyncio.gather` under an `asyncio.Semaphore` (no sprout code), same prompts, same request parameters, same
   concurrency. The server is shared by both sides.
   transformers serve decodes greedily unless the model's generation config samples (SmolLM2's does not), so
   both sides get the same tokens. Goal >= 0.90.

4. Engines (bench/engine_replay.py). `sprout data --config configs/data.yaml` runs once, recorded: every model call
   it makes (prompts, sampling). The same calls are replayed in order on transformers (`LocalBackend`, the engine
   `make data` used before issue 18) and on llama.cpp (`LlamaCppBackend`, the default now), a fresh engine per run,
   no cache: model time end to end and per phase (prefill: passes that read prompt tokens; decode: passes that only
   write). Goal >= 3x. About 40 minutes with the whole config; `--data-set KEY=VALUE` scales the recorded run down.

Every figure runs `--repeats` times per side in A B, B A order (so a drift in machine speed weighs on both
sides alike) and compares the medians; in figures 1-3 an untimed warm-up call precedes each. No threshold is
asserted: each ratio is printed beside its goal. Writes bench/results/generation.json with the raw numbers and the
machine. Figures 1-3 take about 6 minutes on 2 cores; another busy process on the machine skews every figure.

    python bench/generation.py [--prompts 32] [--openai-prompts 16] [--max-tokens 64] [--batch 32]
                               [--concurrency 4] [--repeats 2]
                               [--si-requests 4] [--si-tasks 8] [--figures 1 2 3 4] [--skip-openai]
                               [--data-set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "generation.json"
GOALS = {"local_batching": 4.0, "pipeline_overhead": 0.90, "openai_client": 0.90, "engine": 3.0}


def chat_prompts(count: int) -> list[list[dict]]:
    """Realistic instructions: the seed tasks' own, each with its first instance's input (if any)."""
    prompts = []
    for line in (REPO / "seeds" / "general.jsonl").read_text(encoding="utf-8").splitlines()[:count]:
        task = json.loads(line)
        given = task["instances"][0]["input"]
        content = task["instruction"] + (f"\n\n{given}" if given and given != "<noinput>" else "")
        prompts.append([{"role": "user", "content": content}])
    return prompts


def completion_tokens(results) -> int:
    return sum(c.completion_tokens for row in results for c in row)


def rate(tokens: int, seconds: float) -> dict:
    return {"completion_tokens": tokens, "seconds": round(seconds, 3), "tokens_per_second": round(tokens / seconds, 2)}


def median_rate(runs: list[dict]) -> float:
    return round(statistics.median(r["tokens_per_second"] for r in runs), 2)


def abba(sides: tuple[str, str], repeats: int) -> list[str]:
    """A B, B A, A B, ...: each side goes first as often as second, so a drift in machine speed (a warming
    allocator, another process) weighs on both sides alike."""
    order = []
    for i in range(repeats):
        order += sides if i % 2 == 0 else sides[::-1]
    return order


# ---------------------------------------------------------------- 1. local batching


def local_batching(backend, prompts, sampling, batch: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"sequential": [], "batched": []}
    for label in abba(("sequential", "batched"), repeats):
        size = 1 if label == "sequential" else batch
        backend.batch_size = size
        started = time.perf_counter()
        results = backend.generate(prompts, sampling)
        seconds = time.perf_counter() - started
        runs[label].append({"batch_size": size, **rate(completion_tokens(results), seconds),
                            "hit_max_tokens": sum(c.finish_reason == "length" for row in results for c in row)})
    backend.batch_size = batch
    sequential, batched = (median_rate(runs[k]) for k in ("sequential", "batched"))
    return {"prompts": len(prompts), "batch_size": batch, "sequential": runs["sequential"], "batched": runs["batched"],
            "sequential_tokens_per_second": sequential, "batched_tokens_per_second": batched,
            "ratio": round(batched / sequential, 3)}


# ---------------------------------------------------------------- 2. pipeline overhead


class Recorder:
    """Between the cache and the model: logs each call the pipeline makes, and the seconds spent inside it."""

    def __init__(self, inner):
        self.inner, self.model_id = inner, inner.model_id
        self.calls: list[tuple[list, object]] = []
        self.seconds = 0.0
        self.tokens = 0
        self.notes = inner.notes

    def cache_extras(self) -> dict:  # the backend contract the cache relies on (backends/base.py): the inner one's
        return self.inner.cache_extras()

    def generate(self, batch, sampling):
        started = time.perf_counter()
        results = self.inner.generate(batch, sampling)
        self.seconds += time.perf_counter() - started
        self.calls.append((batch, sampling))
        self.tokens += completion_tokens(results)
        return results

    def close(self) -> None:
        pass  # the LocalBackend is shared with the other figures


def sprout_batch(backend, seeds, config, tmp: Path, run: int) -> tuple[Recorder, float, object]:
    """One Self-Instruct batch as `sprout data` runs it: fresh generator, filters and cache; timed whole."""
    from sprout.backends.cache import CachedBackend
    from sprout.config.filters import FilterConfig
    from sprout.filters.build import build_filters
    from sprout.generators.self_instruct.generator import SelfInstruct

    recorder = Recorder(backend)
    cached = CachedBackend(recorder, tmp / f"cache-{run}.sqlite")  # fresh: every call reaches the model
    started = time.perf_counter()
    filters = build_filters(FilterConfig(), [s.instruction for s in seeds])
    generator = SelfInstruct(config, seeds, cached, filters, run_seed=1)
    result = generator.run_batch(0, needed=config.target)
    seconds = time.perf_counter() - started
    cached.close()
    return recorder, seconds, result


def bare_replay(backend, calls) -> tuple[int, float]:
    started = time.perf_counter()
    tokens = sum(completion_tokens(backend.generate(batch, sampling)) for batch, sampling in calls)
    return tokens, time.perf_counter() - started


def pipeline_overhead(backend, requests: int, tasks: int, repeats: int) -> dict:
    from sprout.backends.base import Sampling
    from sprout.core.prompts import load_prompt
    from sprout.core.seeds import load_seeds
    from sprout.generators.self_instruct.config import SelfInstructConfig

    seeds = load_seeds([REPO / "seeds" / "general.jsonl"])
    config = SelfInstructConfig(requests_per_batch=requests, tasks_per_batch=tasks)
    # Warm-up on prompts as long as the recipe's (few-shot lists), so neither side pays for first-use allocations.
    long_prompt = load_prompt("self_instruct/new_tasks").render(tasks=[s.instruction for s in seeds[:8]])
    backend.generate([long_prompt] * min(tasks, backend.batch_size), Sampling(max_tokens=4))
    runs: dict[str, list[dict]] = {"sprout": [], "bare": []}
    model_seconds, calls, result, tokens_seen = [], None, None, set()
    with tempfile.TemporaryDirectory() as tmp:
        for run, side in enumerate(abba(("sprout", "bare"), repeats)):  # sprout first: it records the calls
            if side == "sprout":
                recorder, seconds, result = sprout_batch(backend, seeds, config, Path(tmp), run)
                calls = calls or recorder.calls  # same seeds, same calls every run (checked by the token count)
                runs["sprout"].append(rate(recorder.tokens, seconds))
                model_seconds.append(round(recorder.seconds, 3))
                tokens_seen.add(recorder.tokens)
            else:
                tokens, seconds = bare_replay(backend, calls)
                runs["bare"].append(rate(tokens, seconds))
                tokens_seen.add(tokens)
    sprout_tps, bare_tps = median_rate(runs["sprout"]), median_rate(runs["bare"])
    return {
        "workload": f"SelfInstruct.run_batch(0): requests_per_batch={requests}, tasks_per_batch={tasks}, the "
                    "recipe's sampling, default filters, CachedBackend on a fresh SQLite cache",
        "calls": [{"prompts": len(batch), "max_tokens": s.max_tokens, "temperature": s.temperature}
                  for batch, s in calls],
        "new_tasks": result.units, "records": len(result.records), "rejections": len(result.rejections),
        "sprout": runs["sprout"], "bare": runs["bare"], "same_tokens": len(tokens_seen) == 1,
        # The sprout step's seconds inside the model calls; the rest is prompts, parsing, filters, cache, records.
        "sprout_seconds_inside_model_calls": model_seconds,
        "sprout_tokens_per_second": sprout_tps, "bare_tokens_per_second": bare_tps,
        "ratio": round(sprout_tps / bare_tps, 3),
    }


# ---------------------------------------------------------------- 3. OpenAI-compatible client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """A real `transformers serve` on a free loopback port (its log goes to a file: a pipe nobody reads can fill
    and stall the server); returns the process and its root URL once healthy."""
    port = free_port()
    cli = Path(sys.executable).parent / "transformers"  # the console script of transformers[serving]
    with log.open("w") as sink:
        process = subprocess.Popen([str(cli), "serve", str(model_dir), "--device", "cpu", "--port", str(port),
                                    "--host", "127.0.0.1"], stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a start-up guard, not a timing
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"transformers serve exited: {log.read_text()[-2000:]}") from None
            time.sleep(1)
    stop_server(process)
    raise RuntimeError("transformers serve did not become healthy within 180 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def with_sprout(url: str, model: str, prompts, sampling, concurrency: int) -> tuple[dict, list[str]]:
    from sprout.backends.openai_compat import OpenAIBackend

    backend = OpenAIBackend([url], model, max_concurrency=concurrency)
    try:
        started = time.perf_counter()
        results = backend.generate(prompts, sampling)
        seconds = time.perf_counter() - started
    finally:
        backend.close()
    return rate(completion_tokens(results), seconds), [row[0].text for row in results]


def with_plain_client(url: str, model: str, prompts, sampling, concurrency: int) -> tuple[dict, list[str]]:
    """What a user without sprout writes: the async client, a semaphore, gather. Same request parameters."""
    import openai

    async def main():
        client = openai.AsyncOpenAI(base_url=url, api_key="none", timeout=120.0, max_retries=5)
        gate = asyncio.Semaphore(concurrency)

        async def one(messages):
            async with gate:
                return await client.chat.completions.create(
                    model=model, messages=messages, n=1, max_tokens=sampling.max_tokens,
                    temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed, stop=None,
                    presence_penalty=sampling.presence_penalty, frequency_penalty=sampling.frequency_penalty)

        started = time.perf_counter()
        responses = await asyncio.gather(*(one(p) for p in prompts))
        seconds = time.perf_counter() - started
        await client.close()
        return responses, seconds

    responses, seconds = asyncio.run(main())
    tokens = sum(r.usage.completion_tokens for r in responses)
    return rate(tokens, seconds), [(r.choices[0].message.content or "").strip() for r in responses]


def openai_client(model_dir: Path, prompts, sampling, concurrency: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"plain": [], "sprout": []}
    texts: dict[str, list[list[str]]] = {"plain": [], "sprout": []}
    with tempfile.TemporaryDirectory() as tmp:
        process, root = start_server(model_dir, Path(tmp) / "serve.log")
        url, model = f"{root}/v1", str(model_dir)  # the served model's name is the folder as given to `serve`
        try:
            with_plain_client(url, model, prompts[:concurrency], sampling, concurrency)  # warm-up
            for side in abba(("plain", "sprout"), repeats):  # the server is shared: alternate
                client = with_plain_client if side == "plain" else with_sprout
                measured, written = client(url, model, prompts, sampling, concurrency)
                runs[side].append(measured)
                texts[side].append(written)
        finally:
            stop_server(process)
    plain_tps, sprout_tps = median_rate(runs["plain"]), median_rate(runs["sprout"])
    return {"prompts": len(prompts), "max_concurrency": concurrency, "plain": runs["plain"], "sprout": runs["sprout"],
            "same_texts": all(t == texts["plain"][0] for side in texts.values() for t in side),
            "plain_tokens_per_second": plain_tps, "sprout_tokens_per_second": sprout_tps,
            "ratio": round(sprout_tps / plain_tps, 3)}


# ---------------------------------------------------------------- report


def machine(torch) -> dict:
    import transformers

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__}


def print_table(rows: list[tuple[str, str, str, float, float]]) -> None:
    print(f"\n{'figure':<22}{'baseline':<34}{'sprout':<34}{'ratio':>8}{'goal':>9}  met")
    for figure, baseline, ours, ratio, goal in rows:
        met = ("yes" if ratio >= goal else "NO") if goal else "-"
        print(f"{figure:<22}{baseline:<34}{ours:<34}{ratio:>7.2f}x{('>= ' + format(goal, 'g')) if goal else '':>9}  "
              f"{met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32, help="chat prompts for figure 1 (seed tasks)")
    parser.add_argument("--openai-prompts", type=int, default=16, help="of those, the ones figure 3 sends")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion budget for figures 1 and 3")
    parser.add_argument("--batch", type=int, default=32, help="LocalBackend batch size (sprout's default)")
    parser.add_argument("--concurrency", type=int, default=4, help="max concurrent requests, both clients")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side (A B, B A, ...)")
    parser.add_argument("--si-requests", type=int, default=4,
                        help="figure 2: Self-Instruct proposal prompts per batch (sprout's default 8)")
    parser.add_argument("--si-tasks", type=int, default=8,
                        help="figure 2: tasks taken for instances per batch (sprout's default 16)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the local backend")
    parser.add_argument("--figures", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4],
                        help="which figures to measure")
    parser.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE",
                        help="figure 4: override a key of configs/data.yaml for the recorded run (default: none, "
                        "the whole make data run)")
    parser.add_argument("--skip-openai", action="store_true", help="leave out figure 3 (no server is started)")
    args = parser.parse_args()
    figures = set(args.figures) - ({3} if args.skip_openai else set())

    import torch

    from sprout.backends.base import Sampling
    from sprout.backends.local import LocalBackend
    from sprout.backends.model_store import resolve_model

    model_dir = resolve_model("embedded", log=print)
    prompts = chat_prompts(args.prompts)
    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=args.max_tokens, seed=1)
    backend = None
    if figures & {1, 2}:
        backend = LocalBackend(model_dir, batch_size=args.batch, threads=args.threads)
        backend.generate(prompts[:args.batch], Sampling(temperature=0.7, max_tokens=8))  # warm-up
    print(f"{len(prompts)} chat prompts, temperature 0.7, top_p 0.9, max {args.max_tokens} tokens; batch "
          f"{args.batch}; concurrency {args.concurrency}; {args.threads} torch threads on {os.cpu_count()} CPUs; "
          f"{args.repeats} runs per side")

    report: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(torch),
                    "model": model_dir.name, "args": vars(args), "goals": GOALS,
                    "sampling": {"temperature": 0.7, "top_p": 0.9, "max_tokens": args.max_tokens, "seed": 1}}
    rows, notes = [], []
    if 1 in figures:
        print("1: local backend, batch 1 vs batched ...", flush=True)
        one = report["local_batching"] = local_batching(backend, prompts, sampling, args.batch, args.repeats)
        rows.append(("local batching", f"batch 1: {one['sequential_tokens_per_second']:.1f} tok/s",
                     f"batch {args.batch}: {one['batched_tokens_per_second']:.1f} tok/s", one["ratio"],
                     GOALS["local_batching"]))
    if 2 in figures:
        print("2: pipeline overhead, SelfInstruct.run_batch vs the bare backend on the same calls ...", flush=True)
        two = report["pipeline_overhead"] = pipeline_overhead(backend, args.si_requests, args.si_tasks,
                                                              args.repeats)
        rows.append(("pipeline overhead", f"bare backend: {two['bare_tokens_per_second']:.1f} tok/s",
                     f"run_batch: {two['sprout_tokens_per_second']:.1f} tok/s", two["ratio"],
                     GOALS["pipeline_overhead"]))
        inside = statistics.median(two["sprout_seconds_inside_model_calls"])
        total = statistics.median(r["seconds"] for r in two["sprout"])
        notes.append(f"pipeline step: {len(two['calls'])} model calls, {two['new_tasks']} new tasks, "
                     f"{two['records']} records, {two['rejections']} rejects; same tokens every run: "
                     f"{two['same_tokens']}; {total - inside:.2f} s of {total:.1f} s outside the model calls")
    if 3 in figures:
        backend = None  # the server gets the cores and the memory
        print("3: OpenAI-compatible, OpenAIBackend vs plain AsyncOpenAI ...", flush=True)
        # The server decodes one request at a time (~27 tok/s here): fewer prompts keep this figure short.
        three = report["openai_client"] = openai_client(model_dir, prompts[:args.openai_prompts], sampling,
                                                        args.concurrency, args.repeats)
        rows.append(("openai client", f"plain AsyncOpenAI: {three['plain_tokens_per_second']:.1f} tok/s",
                     f"OpenAIBackend: {three['sprout_tokens_per_second']:.1f} tok/s", three["ratio"],
                     GOALS["openai_client"]))
        notes.append(f"openai: same texts from both clients: {three['same_texts']}")

    if 4 in figures:
        from engine_replay import engine_figure

        backend = None
        four = report["engine"] = engine_figure(args.data_set, args.repeats, args.threads, abba)
        old, new = four["medians"]["transformers"], four["medians"]["llama.cpp"]
        rows.append(("engine (model time)", f"transformers: {old['seconds']:.0f} s",
                     f"llama.cpp: {new['seconds']:.0f} s", four["ratio"], GOALS["engine"]))
        rows.append(("  prefill", f"transformers: {old['prefill_seconds']:.0f} s",
                     f"llama.cpp: {new['prefill_seconds']:.0f} s", four["prefill_ratio"], 0))
        rows.append(("  decode", f"transformers: {old['decode_seconds']:.0f} s",
                     f"llama.cpp: {new['decode_seconds']:.0f} s", four["decode_ratio"], 0))
        rec = four["recording"]
        notes.append(f"engine: make data's {four['workload']['calls']} calls ({four['workload']['samples']} samples)"
                     f", recorded in a {rec['run_seconds']:.0f} s run ({rec['model_seconds']:.0f} s in model calls)"
                     f" on {rec['engine']}; overrides: {four['overrides'] or 'none'}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    # Figures not measured this time keep their last results (each figure's entry says its own date).
    kept = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    for figure in ("local_batching", "pipeline_overhead", "openai_client", "engine"):
        if figure in report:
            report[figure]["date"] = report["date"]
        elif figure in kept:
            report[figure] = kept[figure]
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(rows)
    for note in notes:
        print(note)
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
