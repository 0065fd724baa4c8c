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
from dataclasses import dataclass, field

from sprout.backends.base import Sampling, rejection_rule
from sprout.config.base import SamplingConfig
from sprout.config.filters import FilterConfig
from sprout.core.prompts import PromptSet, load_prompt
from sprout.core.records import Lineage, Record, Rejection
from sprout.filters.build import build_judge, build_stage
from sprout.filters.rules import ScaffoldCopy
from sprout.filters.stage import FilterStage
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.evol_instruct.scaffold import scaffold_phrases

NAME = "evol_instruct"


def as_text(record: Record) -> str:
    """The instruction as the model sees it: its input, if any, goes with it."""
    return f"{record.instruction}\n\n{record.input}" if record.input.strip() else record.instruction


def clean_rewrite(text: str) -> str:
    # Only the wrapping goes; scaffold words inside stay for the scaffold_copy rule to count.
    return text.strip().strip('"').strip()


@dataclass
class RoundResult:
    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    fates: dict = field(default_factory=dict)  # this round's accounting (see EvolInstruct.run_round)


class EvolInstruct:
    def __init__(self, config: EvolInstructConfig, sources: list[Record], backend, stage: FilterStage,
                 run_seed: int):
        self.config, self.backend, self.stage, self.run_seed = config, backend, stage, run_seed
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
        self.parents: dict[str, Record] = {}  # the rows a step is evolving: what the judge compares with
        self.prompts = PromptSet({op: load_prompt(f"evol/{op}") for op in config.operations} | {
            "respond": load_prompt("evol/respond")}, config.mode)

    def parent_of(self, record: Record) -> dict[str, str]:
        """Judge context: the instruction this one evolved from."""
        return {"parent": as_text(self.parents[record.lineage.parent_ids[0]])}

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

    def run_round(self, round_no: int) -> RoundResult:
        """A whole round at once: its records, its rejects and its fates."""
        result = RoundResult()
        for part in self.steps(round_no):
            result.records += part.records
            result.rejections += part.rejections
        result.fates = self.rounds[-1]
        return result

    def steps(self, round_no: int) -> Iterator[RoundResult]:
        """One attempt per row of the generation, `step_rows` rows at a time: each step's answers are cached and
        its lines written together, so a killed run loses at most one step. The round's fates (self.rounds[-1])
        are complete once the last step is taken."""
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
            self.done_attempts += len(part.records) + len(part.rejections)
            yield part
        self.generation = [survivors.get(p.id, p) for p in parents]  # a failed row stays as it was
        self.times_evolved = [n + (p.id in survivors) for n, p in zip(self.times_evolved, parents, strict=True)]
        fates["failed"] = len(parents) - len(survivors)
        fates["retried_next_round"] = fates["failed"] if round_no + 1 < self.config.rounds else 0

    def _attempt(self, parents: list[Record], round_no: int) -> RoundResult:
        """One evolution attempt for each of these rows: rewrite, response, elimination."""
        result = RoundResult()
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
        self.parents = {p.id: p for p in parents}
        accepted, rejected, _ = self.stage.run(answered)
        result.records, result.rejections = accepted, result.rejections + rejected
        return result

    def outcome(self) -> dict:
        """Every input row's fate over the run: in how many rounds its lineage evolved, and how many rows the
        per_round cap left out (never attempted)."""
        times = Counter(self.times_evolved)
        return {"rows": len(self.times_evolved) + len(self.left_out), "left_out": len(self.left_out),
                "rounds": len(self.rounds), "evolved_in_rounds": {str(k): times[k] for k in sorted(times)}}


def make_evolver(config: EvolInstructConfig, filters: FilterConfig, sources: list[Record], backend_for,
                 run_seed: int, dedup_against: list[Record]) -> EvolInstruct:
    """The generator with its elimination stage: `config.rules` in order, then the equal judge (batched, last).
    Near-duplicates are judged on the instruction, against `dedup_against` (seeds and sources, by id, so a row's
    evolutions skip only their own ancestors) and every accepted evolution."""
    holder: list[EvolInstruct] = []
    judge = build_judge(config.judge, backend_for(config.judge.backend), context=lambda r: holder[0].parent_of(r))
    stage = build_stage("evolutions", config.rules, filters.model_copy(update={"dedup_on": "instruction"}), [judge])
    stage.seed_dedup(dedup_against)
    phrases = scaffold_phrases([load_prompt(f"evol/{op}") for op in config.operations])
    for rule in stage.rules:
        if isinstance(rule, ScaffoldCopy):
            rule.extend(phrases)
    holder.append(EvolInstruct(config, sources, backend_for(None), stage, run_seed))
    return holder[0]
