"""`sprout data --dry-run`: run a small sample of the configured run, then estimate the whole run from it.

The sample is the same config with each generator's size scaled down (Self-Instruct's target, Evol-Instruct's
rounds, each pair-synthesis task's `n`), written to a temporary folder that is removed afterwards. Its answers go to
the run's response cache, so the real run reuses them instead of paying twice. For each model and generator, the
sample gives requests (made or served from the cache), tokens and model time per unit of work (a task grown, an
evolution, a pair); the estimate scales them by the full run's units. A judge scales with the generator whose
records it judges. Cost is the estimated tokens at the configured `backend.price`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sprout.backends.pricing import cost
from sprout.config.loader import dump_resolved
from sprout.config.run import DataConfig
from sprout.io.jsonl import atomic_write


@dataclass
class Estimate:
    sample: dict  # the sample run: usage (as in report.json), seconds, units of work per generator
    rows: list[dict]  # per model and generator: scale, and estimated requests, tokens, seconds, cost
    totals: dict
    currency: str | None


def sample_config(config: DataConfig, share: float, out_dir: Path) -> DataConfig:
    generators = config.generators
    si = generators.self_instruct
    updates = {"self_instruct": si.model_copy(update={"target": max(2, math.ceil(si.target * share))})}
    if generators.evol_instruct:
        evol = generators.evol_instruct
        updates["evol_instruct"] = evol.model_copy(update={"rounds": max(1, math.ceil(evol.rounds * share))})
    updates["pair_synthesis"] = [p.model_copy(update={"n": max(2, math.ceil(p.n * share))})
                                 for p in generators.pair_synthesis]
    return config.model_copy(update={"out_dir": out_dir, "generators": generators.model_copy(update=updates)})


def full_work(config: DataConfig, evol_rows: int = 0) -> dict[str, float]:
    """Units of work the full run is configured for (planned: a real run may stop short of them). Evol-Instruct
    attempts every row each round: its rows are the tasks grown (Self-Instruct's target), or `evol_rows` (the
    seeds or the file, as many in the sample as in the full run), capped by per_round."""
    from sprout.runs.plan import evol_units

    generators = config.generators
    evol = generators.evol_instruct
    rows = (generators.self_instruct.target if evol.source == "pool" else evol_rows) if evol else 0
    return {"self_instruct": generators.self_instruct.target,
            "evol_instruct": evol_units(evol, rows) if evol else 0,
            "pair_synthesis": sum(p.n for p in generators.pair_synthesis)}


def estimate(config: DataConfig, share: float = 0.1, log=print) -> Estimate:
    from sprout.runs.data import run_data

    with tempfile.TemporaryDirectory(prefix="sprout-dry-run-") as folder:
        summary = run_data(sample_config(config, share, Path(folder) / "sample"), force=True, log=log)
    full = full_work(config, (summary.evol_rounds.get("outcome") or {}).get("rows", 0))
    scale = {g: full[g] / summary.work[g] for g in full if summary.work.get(g)}
    overall = sum(full.values()) / max(1, sum(summary.work.get(g, 0) for g in full))
    # A judge scales with the generator it judges (usage is logged under `judge:<name>`); one judging several
    # generators scales with the run's work as a whole.
    owner = {f"judge:{judge.name}": judge.generators[0] for judge in config.filters.judges
             if len(judge.generators) == 1 and judge.generators[0] != "all"}
    if config.generators.evol_instruct:
        owner[f"judge:{config.generators.evol_instruct.judge.name}"] = "evol_instruct"
    usage = summary.usage
    prices = usage.get("prices", {})
    rows = []
    for model, generators in usage.get("by_model", {}).items():
        for generator, c in generators.items():
            factor = scale.get(owner.get(generator, generator), overall)
            requests = c["calls"] + c["cache_hits"]
            row = {"model": model, "generator": generator, "scale": factor, "sample_requests": requests,
                   "requests": requests * factor,
                   "prompt_tokens": (c["prompt_tokens"] + c["cached_prompt_tokens"]) * factor,
                   "completion_tokens": (c["completion_tokens"] + c["cached_completion_tokens"]) * factor,
                   # model time per request made (cache hits take none); unknown if the sample was all cached
                   "seconds": c["seconds"] / c["calls"] * requests * factor if c["calls"] else None}
            if price := prices.get(model):
                row["cost"] = cost(row["prompt_tokens"], row["completion_tokens"], price)
            rows.append(row)
    totals = {key: sum(r[key] for r in rows) for key in ("requests", "prompt_tokens", "completion_tokens")}
    known = [r["seconds"] for r in rows if r["seconds"] is not None]
    # Time outside model calls (parsing, filtering, writing) scales with the work as a whole.
    totals["seconds"] = sum(known) + max(0.0, summary.seconds - usage.get("seconds", 0.0)) * overall
    totals["seconds_complete"] = len(known) == len(rows)
    if prices:
        totals["cost"] = sum(r.get("cost", 0.0) for r in rows)
    currency = usage["cost"]["currency"] if prices else None
    sample = {"usage": usage, "seconds": summary.seconds, "work": summary.work, "full_work": full}
    return Estimate(sample, rows, totals, currency)


def pace_file(config: DataConfig) -> Path:
    """Where a dry run leaves its measured pace for the real run's progress display: beside the response cache."""
    return Path(config.cache).parent / "dry-run-pace.json"


def save_pace(config: DataConfig, estimate: Estimate) -> None:
    """Seconds of model time per unit of work, per generator kind, as the sample measured them, keyed by the run's
    config (an estimate for another config says nothing about this one)."""
    seconds: dict[str, float] = {}
    for row in estimate.rows:
        kind = row["generator"] if row["generator"] in estimate.sample["work"] else None
        if kind and row["seconds"] is not None:
            seconds[kind] = seconds.get(kind, 0.0) + row["seconds"] / row["scale"]
    pace = {kind: s / estimate.sample["work"][kind] for kind, s in seconds.items() if estimate.sample["work"][kind]}
    path = pace_file(config)
    known = json.loads(path.read_text()) if path.exists() else {}
    known[_config_key(config)] = pace
    atomic_write(path, json.dumps(known, indent=1) + "\n")


def load_pace(config: DataConfig) -> dict[str, float]:
    """The pace a dry run of this same config measured ({} when there was none)."""
    path = pace_file(config)
    try:
        return json.loads(path.read_text()).get(_config_key(config), {}) if path.exists() else {}
    except (OSError, ValueError):
        return {}


def _config_key(config: DataConfig) -> str:
    return hashlib.sha256(dump_resolved(config).encode()).hexdigest()[:16]
