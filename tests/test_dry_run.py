"""`sprout data --dry-run`: the sample's config, and the estimate's arithmetic (the sample run itself is replaced by
a recorded summary here; tests/test_end_to_end.py runs the real thing on the embedded model)."""

import pytest

import sprout.runs.data
from sprout.config.run import DataConfig
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.pair_synthesis.config import PairSynthesisConfig
from sprout.runs.context import RunSummary
from sprout.runs.dry_run import estimate, full_work, sample_config


def config(**overrides) -> DataConfig:
    generators = {"self_instruct": {"target": 40}, "evol_instruct": EvolInstructConfig(rounds=4, per_round=8),
                  "pair_synthesis": [PairSynthesisConfig(task="seeds/tasks/political_promises.yaml", n=24)]}
    return DataConfig(**{"generators": generators, **overrides})


def test_the_sample_scales_every_generator_down_and_writes_elsewhere(tmp_path):
    full = config()
    sample = sample_config(full, 0.1, tmp_path / "sample")
    assert sample.out_dir == tmp_path / "sample" and sample.cache == full.cache  # answers reused by the real run
    assert sample.generators.self_instruct.target == 4 and sample.generators.evol_instruct.rounds == 1
    assert sample.generators.pair_synthesis[0].n == 3
    assert sample.generators.evol_instruct.per_round == 8 and sample.backend == full.backend
    assert full_work(full) == {"self_instruct": 40, "evol_instruct": 32, "pair_synthesis": 24}
    tiny = sample_config(config(), 0.01, tmp_path)
    assert tiny.generators.self_instruct.target == 2 and tiny.generators.pair_synthesis[0].n == 2  # floors


def row(calls, hits, prompt, completion, seconds, cached_prompt=0, cached_completion=0, cost=None):
    out = {"calls": calls, "cache_hits": hits, "prompt_tokens": prompt, "completion_tokens": completion,
           "cached_prompt_tokens": cached_prompt, "cached_completion_tokens": cached_completion, "seconds": seconds}
    return out | ({"cost": cost} if cost is not None else {})


def test_estimate_scales_each_generator_by_its_own_work_and_prices_all_tokens(monkeypatch):
    usage = {"calls": 30, "cache_hits": 10, "seconds": 20.0,
             "by_model": {"openai:m": {"self_instruct": row(20, 10, 10_000, 2_000, 10.0, 5_000, 1_000),
                                       "evol_instruct": row(8, 0, 4_000, 1_000, 8.0),
                                       "judge:equal": row(2, 0, 1_000, 10, 2.0)}},
             "cost": {"total": 0.0, "saved_by_cache": 0.0, "currency": "EUR", "unpriced_models": []},
             "prices": {"openai:m": {"input_per_million": 1.0, "output_per_million": 4.0, "currency": "EUR"}}}
    summary = RunSummary("x", 10, 4, new_tasks=4, seconds=25.0, usage=usage,
                         work={"self_instruct": 4, "evol_instruct": 4, "pair_synthesis": 0})
    monkeypatch.setattr(sprout.runs.data, "run_data", lambda *args, **kwargs: summary)
    result = estimate(config(generators={"self_instruct": {"target": 40},
                                         "evol_instruct": EvolInstructConfig(rounds=4, per_round=8)}), log=print)
    rows = {r["generator"]: r for r in result.rows}
    si, evol, judge = rows["self_instruct"], rows["evol_instruct"], rows["judge:equal"]
    assert si["scale"] == 10 and evol["scale"] == 8 and judge["scale"] == 8  # the judge goes with evolution
    assert si["requests"] == 300 and si["prompt_tokens"] == 150_000 and si["completion_tokens"] == 30_000
    assert si["seconds"] == pytest.approx(10.0 / 20 * 30 * 10)  # time per request made, for every request
    assert si["cost"] == pytest.approx((150_000 * 1.0 + 30_000 * 4.0) / 1e6)
    assert result.totals["requests"] == 300 + 64 + 16 and result.currency == "EUR"
    overall = 72 / 8  # planned work / sample work
    assert result.totals["seconds"] == pytest.approx(150 + 64 + 16 + (25.0 - 20.0) * overall)
    assert result.totals["cost"] == pytest.approx(sum(r["cost"] for r in result.rows))


def test_a_dry_run_leaves_its_pace_for_the_real_run_of_the_same_config_only(tmp_path):
    from sprout.runs.dry_run import Estimate, load_pace, save_pace

    config = DataConfig(cache=tmp_path / "cache" / "responses.sqlite", out_dir=tmp_path / "run")
    rows = [{"model": "m", "generator": "self_instruct", "scale": 10.0, "seconds": 400.0},
            {"model": "m", "generator": "evol_instruct", "scale": 5.0, "seconds": 50.0},
            {"model": "m", "generator": "judge:quality", "scale": 10.0, "seconds": 99.0},
            {"model": "m", "generator": "pair_synthesis", "scale": 2.0, "seconds": None}]
    sample = {"work": {"self_instruct": 4, "evol_instruct": 5, "pair_synthesis": 2}}
    save_pace(config, Estimate(sample, rows, {}, None))
    # model seconds in the sample (estimate / scale) per unit of the sample's work; unknown time is left out
    assert load_pace(config) == {"self_instruct": 10.0, "evol_instruct": 2.0}
    assert load_pace(config.model_copy(update={"seed": 7})) == {}  # another config: no pace
