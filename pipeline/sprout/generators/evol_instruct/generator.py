"""Evol-Instruct (Xu et al., 2023): make instructions harder (in depth) or rarer (in breadth), generation by generation.

Reads: the rows to evolve (a user's dataset, the seeds, or the tasks Self-Instruct grew). Writes: one line per
evolution attempt — the evolved record (instruction and response) to the accepted records, or the elimination with
its rule to the rejects.

As the paper runs it: each round gives every row of the current generation one attempt, with one operation drawn
for that row (seeded by the run, the row and the round) and the round's sampling seed. The rewrite is answered, then
eliminated or kept by the elimination stage: the general rules, near-duplicates of anything but the row's own
ancestors, the paper's checks (refusal, punctuation/stop words only, scaffold copy — the scaffold words derived from
the prompts) and last the LLM judge asked whether child and parent are equal. A survivor replaces its parent in the
next generation; a failed row stays as it was, to be tried again next round with a new draw. `per_round` caps the
rows evolved (a seeded sample of the input, for a big dataset); the rest are left out and counted.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

from sprout.backends.base import Sampling, rejection_rule
from sprout.config.base import SamplingConfig
from sprout.config.filters import FilterConfig
from sprout.core.parsing import clean_rewrite
from sprout.core.prompts import PromptSet, load_prompt
from sprout.core.records import Lineage, Record, prompt_text
from sprout.filters.rules import ScaffoldCopy
from sprout.filters.shared import RunFilters
from sprout.filters.stage import FilterStage
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.evol_instruct.scaffold import scaffold_phrases
from sprout.generators.protocol import StepResult

NAME = "evol_instruct"


as_text = prompt_text  # the instruction as the model sees it: its input, if any, goes with it




class EvolInstruct:
    """Evol-Instruct (Xu et al., 2023; see the module docstring). Reads: the rows to evolve. Writes: one line per
    evolution attempt (the evolved record, or its elimination). Its units of work are attempts: `rounds` × the rows
    evolved; a step is `step_rows` attempts of a round. Filters through the run's `evolutions` view: its rules, the
    instruction pool shared with Self-Instruct and the seeds, and the judges that judge it (the equality judge)."""

    name, unit = NAME, "attempts"

    def __init__(self, config: EvolInstructConfig, sources: list[Record], backend, stage: FilterStage,
                 run_seed: int, remember_parents=None, log=None):
        self.config, self.backend, self.stage, self.run_seed = config, backend, stage, run_seed
        self.remember_parents = remember_parents or (lambda parents: None)  # the judges' `parent`
        self.log = log or (lambda message: None)
        self.generation = list(sources)  # the rows the next round evolves: one per lineage, in input order
        self.left_out: list[Record] = []
        if config.per_round is not None and len(sources) > config.per_round:
            rng = random.Random(f"{run_seed}:{NAME}:sample")
            chosen = set(rng.sample(range(len(sources)), config.per_round))
            self.generation = [r for i, r in enumerate(sources) if i in chosen]
            self.left_out = [r for i, r in enumerate(sources) if i not in chosen]
        self.attempted = 0  # evolutions asked for, over all rounds (the dry run's unit of evolution work)
        self.done_attempts = 0  # of those, attempts whose outcome is known (for a progress bar)
        self.rounds: list[dict] = []  # each round's fates, for the summary and the report
        self.times_evolved = [0] * len(self.generation)  # per lineage (a position of the generation)
        self.prompts = PromptSet({op: load_prompt(f"evol/{op}") for op in config.operations} | {
            "respond": load_prompt("evol/respond")}, config.mode)
        self.stopped_early = False
        self._round: Iterator[StepResult] | None = None  # the round being stepped through
        self._round_done = False  # its last step was taken

    # The Generator protocol (generators/protocol.py).
    def planned(self) -> int:
        return self.config.rounds * len(self.generation)

    def progress(self) -> int:
        return self.done_attempts

    @property
    def done(self) -> bool:
        return not self.generation or (len(self.rounds) == self.config.rounds and self._round is None)

    def step(self) -> StepResult:
        if self._round is None:
            if not self.rounds and self.left_out:
                self.log(f"Evol-Instruct: per_round={self.config.per_round} evolves a sample of "
                         f"{len(self.generation)} rows; {len(self.left_out)} of the input are left out.")
            self._round = self.steps(len(self.rounds))
        self._round_done = False
        part = next(self._round)
        if self._round_done:
            self._round = None
            fates = self.rounds[-1]
            eliminated = ", ".join(f"{rule} {n}" for rule, n in fates["eliminated"].items()) or "none"
            self.log(f"Evol-Instruct round {fates['round'] + 1}/{self.config.rounds}: {fates['attempted']} attempts, "
                     f"{fates['evolved']} evolved, eliminated: {eliminated}" + (
                         f"; {fates['retried_next_round']} retried next round" if fates["retried_next_round"] else ""))
        return part

    def finish(self) -> StepResult:
        return StepResult()

    def summarize(self, summary) -> None:
        summary.evol_rounds = {"rounds": self.rounds, "outcome": self.outcome()}

    def _sampling(self, cfg: SamplingConfig, round_no: int) -> Sampling:
        return cfg.to_sampling(seed=self.run_seed * 100_003 + 7_919 * (round_no + 1))

    def _operation(self, row: Record, round_no: int) -> str:
        names = [op for op, weight in self.config.operations.items() if weight > 0]
        rng = random.Random(f"{self.run_seed}:{NAME}:{round_no}:{row.id}")  # a fresh draw for every attempt
        return rng.choices(names, weights=[self.config.operations[op] for op in names])[0]

    def _lineage(self, parent: Record, op: str, round_no: int, sampling: Sampling) -> Lineage:
        chain = [*(parent.lineage.chain or []), parent.id]
        return Lineage(generator=NAME, operation=op, parent_ids=[parent.id], round=round_no,
                       seed_ids=parent.lineage.seed_ids or [parent.id], model=self.backend.model_id,
                       prompts={op: self.prompts[op].sha, "respond": self.prompts["respond"].sha},
                       sampling=sampling.for_lineage(), root_id=chain[0], chain=chain,
                       operations=[*(parent.lineage.operations or []), op])

    def run_round(self, round_no: int) -> StepResult:
        """A whole round at once: its records and rejects (its fates: `self.rounds[-1]`)."""
        result = StepResult()
        for part in self.steps(round_no):
            result += part
        return result

    def steps(self, round_no: int) -> Iterator[StepResult]:
        """One attempt per row of the generation, `step_rows` rows at a time: each step's answers are cached and
        its lines written together, so a killed run loses at most one step. The round's fates (self.rounds[-1])
        are complete when its last step is yielded."""
        parents, step = self.generation, self.config.step_rows
        self.attempted += len(parents)
        fates = {"round": round_no, "attempted": len(parents), "evolved": 0, "eliminated": {}, "failed": 0,
                 "retried_next_round": 0, "left_out": len(self.left_out)}
        self.rounds.append(fates)
        eliminated: Counter[str] = Counter()
        survivors: dict[str, Record] = {}
        for start in range(0, len(parents), step):
            part = self._attempt(parents[start:start + step], round_no)
            survivors.update((r.lineage.parent_ids[0], r) for r in part.records)
            eliminated.update(r.rule for r in part.rejections)
            fates["evolved"], fates["eliminated"] = len(survivors), dict(eliminated)
            part.units = len(part.records) + len(part.rejections)
            self.done_attempts += part.units
            if start + step >= len(parents):  # the round's last step: its bookkeeping before the step is handed on
                self.generation = [survivors.get(p.id, p) for p in parents]  # a failed row stays as it was
                self.times_evolved = [n + (p.id in survivors) for n, p in zip(self.times_evolved, parents,
                                                                                strict=True)]
                fates["failed"] = len(parents) - len(survivors)
                fates["retried_next_round"] = fates["failed"] if round_no + 1 < self.config.rounds else 0
                self._round_done = True
            yield part

    def _attempt(self, parents: list[Record], round_no: int) -> StepResult:
        """One evolution attempt for each of these rows: rewrite, response, elimination."""
        result = StepResult()
        sampling = self._sampling(self.config.sampling, round_no)
        operations = [self._operation(p, round_no) for p in parents]
        rewrites = self.backend.generate([self.prompts.build(op, instruction=as_text(p))
                                          for p, op in zip(parents, operations, strict=True)], sampling, generator=NAME)
        candidates = []
        for parent, op, (reply,) in zip(parents, operations, rewrites, strict=True):
            lineage, text = self._lineage(parent, op, round_no, sampling), clean_rewrite(reply.text)
            if reply.finish_reason == "length" or not text:
                why = "the rewrite hit the length limit" if text else "the rewrite is empty"
                bad = Record(instruction=text, lineage=lineage, raw=reply.text)
                result.rejections.append(self.stage.reject_external(*rejection_rule(reply, "parse:rewrite", why),
                                                                    bad))
            else:
                candidates.append(Record(instruction=text, lineage=lineage))
        answers = self.backend.generate([self.prompts.build("respond", instruction=c.instruction) for c in candidates],
                                        self._sampling(self.config.response_sampling, round_no), generator=NAME)
        answered = []
        for candidate, (reply,) in zip(candidates, answers, strict=True):
            if reply.failed:  # no response at all: the row is tried again next round
                result.rejections.append(self.stage.reject_external("backend_error", reply.error, candidate))
            else:  # a new record, so its id hashes the full content (instruction and response)
                answered.append(Record(instruction=candidate.instruction, output=reply.text, lineage=candidate.lineage))
        self.remember_parents(parents)
        accepted, rejected, _ = self.stage.run(answered)
        result.records, result.rejections = accepted, result.rejections + rejected
        return result

    def outcome(self) -> dict:
        """Every input row's fate over the run: in how many rounds its lineage evolved, and how many rows the
        per_round cap left out (never attempted)."""
        times = Counter(self.times_evolved)
        return {"rows": len(self.times_evolved) + len(self.left_out), "left_out": len(self.left_out),
                "rounds": len(self.rounds), "evolved_in_rounds": {str(k): times[k] for k in sorted(times)}}


def make_evolver(config: EvolInstructConfig, filters: FilterConfig | RunFilters, sources: list[Record], backend_for,
                 run_seed: int, dedup_against: list, log=None) -> EvolInstruct:
    """The generator with its view of the run's filter stage (`filters`; given a FilterConfig, a stage of its own):
    `config.rules` in order, then the judges that judge it — the equality judge (`config.judge`, with the parent in
    its context) and any of `filters.judges` naming evol_instruct — batched, last. Near-duplicates are judged on the
    instruction, against the run's instruction pool, `dedup_against` (the rows evolved and the seeds: records are
    named by id, so a row's evolutions skip only their own ancestors) and every accepted evolution."""
    if not isinstance(filters, RunFilters):
        filters = RunFilters(filters, backend_for, judges=[(config.judge, [NAME])])
    stage = filters.stage("evolutions", config.rules, NAME, holds="instances", dedup_on=filters.config.dedup_on)
    stage.seed_dedup(dedup_against)
    phrases = scaffold_phrases([load_prompt(f"evol/{op}") for op in config.operations])
    for rule in stage.rules:
        if isinstance(rule, ScaffoldCopy):
            rule.extend(phrases)
    return EvolInstruct(config, sources, backend_for(None), stage, run_seed, filters.remember_parents, log)
