"""`sprout data`: grow the seed set into out/<run>/examples.jsonl, with rejects and a report beside it.

The plan (runs/plan.py): Self-Instruct, then Evol-Instruct, pair synthesis per task and FLAN expansion as
configured, run by the one driver over one RunContext and one shared filter stage. Every input is read before the
run's folder is touched, and every model is resolved, so a user mistake costs seconds and leaves no file behind.
"""

from __future__ import annotations

from sprout.backends.registry import Backends
from sprout.config.run import DataConfig
from sprout.runs.context import RunSummary, open_run
from sprout.runs.driver import drive
from sprout.runs.plan import data_plan, evol_judges, judge_backends, read_data_inputs


def run_data(config: DataConfig, force: bool = False, progress=None, log=print) -> RunSummary:
    inputs = read_data_inputs(config)
    backends = Backends(config.backend, config.cache, log)
    backends.resolve(judge_backends(config))
    summary = RunSummary(str(config.out_dir), len(inputs.seeds), config.generators.self_instruct.target)
    with open_run(config, summary, backends, evol_judges(config.generators.evol_instruct), force, log,
                  progress) as ctx:
        drive(ctx, data_plan(config, inputs))
    return summary
