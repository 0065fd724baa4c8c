"""Evol-Instruct (Xu et al., 2023): make instructions harder (in depth) or rarer (in breadth), round after round.

Each round takes instructions from the queue, picks one operation per instruction (seeded, by configured weights),
asks for the rewrite, then for a response to it, and sends both through the elimination stage: the general rules,
ROUGE-L against the pool, the paper's checks (refusal, punctuation/stop-words only, scaffold copy) and last an LLM
judge asked whether the two instructions are equal. A survivor is a new example and the next round evolves it
further; a failed evolution sends its parent back to the queue to be evolved again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sprout.backends.base import Sampling, rejection_rule
from sprout.config import EvolInstructConfig, FilterConfig, SamplingConfig
from sprout.filters.build import build_judge, build_stage
from sprout.filters.stage import FilterStage
from sprout.prompts import PromptSet, load_prompt
from sprout.records import Lineage, Record, Rejection

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


class EvolInstruct:
    def __init__(self, config: EvolInstructConfig, sources: list[Record], backend, stage: FilterStage,
                 run_seed: int):
        self.config, self.backend, self.stage, self.run_seed = config, backend, stage, run_seed
        self.queue = list(sources)  # instructions waiting to evolve, in order
        self.attempted = 0  # evolutions asked for, over all rounds (the dry run's unit of evolution work)
        self.known = {r.id: r for r in sources}  # every parent a judge may need to see
        self.prompts = PromptSet({op: load_prompt(f"evol/{op}") for op in config.operations} | {
            "respond": load_prompt("evol/respond")}, config.mode)

    def parent_of(self, record: Record) -> dict[str, str]:
        """Judge context: the instruction this one evolved from."""
        return {"parent": as_text(self.known[record.lineage.parent_ids[0]])}

    def _sampling(self, cfg: SamplingConfig, round_no: int) -> Sampling:
        return Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                        seed=self.run_seed * 100_003 + 7_919 * (round_no + 1), presence_penalty=cfg.presence_penalty,
                        frequency_penalty=cfg.frequency_penalty)

    def run_round(self, round_no: int) -> RoundResult:
        cfg, result = self.config, RoundResult()
        parents, self.queue = self.queue[: cfg.per_round], self.queue[cfg.per_round:]
        self.attempted += len(parents)
        if not parents:
            return result
        rng = random.Random(f"{self.run_seed}:{NAME}:{round_no}")
        names = [op for op, weight in cfg.operations.items() if weight > 0]
        operations = rng.choices(names, weights=[cfg.operations[op] for op in names], k=len(parents))
        sampling = self._sampling(cfg.sampling, round_no)
        rewrites = self.backend.generate([self.prompts.build(op, instruction=as_text(p))
                                          for p, op in zip(parents, operations, strict=True)], sampling, generator=NAME)
        candidates, failed = [], []
        for parent, op, (reply,) in zip(parents, operations, rewrites, strict=True):
            lineage = Lineage(generator=NAME, operation=op, parent_ids=[parent.id], round=round_no,
                              seed_ids=parent.lineage.seed_ids or [parent.id], model=self.backend.model_id,
                              prompts={op: self.prompts[op].sha, "respond": self.prompts["respond"].sha},
                              sampling=sampling.for_lineage())
            text = clean_rewrite(reply.text)
            if reply.finish_reason == "length" or not text:
                why = "the rewrite hit the length limit" if text else "the rewrite is empty"
                bad = Record(instruction=text, lineage=lineage, raw=reply.text)
                result.rejections.append(self.stage.reject_external(*rejection_rule(reply, "parse:rewrite", why),
                                                                    bad))
                failed.append(parent)
            else:
                candidates.append(Record(instruction=text, lineage=lineage))
        response_sampling = self._sampling(cfg.response_sampling, round_no)
        answers = self.backend.generate([self.prompts.build("respond", instruction=c.instruction) for c in candidates],
                                        response_sampling, generator=NAME)
        # A new record, so its id hashes the full content (instruction and response).
        answered = []
        for c, (reply,) in zip(candidates, answers, strict=True):
            if reply.failed:  # no response at all: the parent goes back to be evolved again
                result.rejections.append(self.stage.reject_external("backend_error", reply.error, c))
                failed.append(self.known[c.lineage.parent_ids[0]])
            else:
                answered.append(Record(instruction=c.instruction, output=reply.text, lineage=c.lineage))
        candidates = answered
        for candidate in candidates:
            self.known[candidate.id] = candidate
        accepted, rejected, _ = self.stage.run(candidates)
        result.records += accepted
        result.rejections += rejected
        back = dict.fromkeys(r.record.lineage.parent_ids[0] for r in rejected)  # ordered, unlike a set
        # Failed evolutions go back to be evolved again; survivors are evolved further in later rounds.
        self.queue += failed + [self.known[pid] for pid in back] + accepted
        return result


def make_evolver(config: EvolInstructConfig, filters: FilterConfig, sources: list[Record], backend_for,
                 run_seed: int, dedup_against: list[str]) -> EvolInstruct:
    """The generator with its elimination stage: `config.rules` in order, then the equal judge (batched, last).
    ROUGE-L starts from `dedup_against` (e.g. the seeds and every accepted instruction)."""
    holder: list[EvolInstruct] = []
    judge = build_judge(config.judge, backend_for(config.judge.backend), context=lambda r: holder[0].parent_of(r))
    stage = build_stage("evolutions", config.rules, filters, [judge])
    stage.seed_dedup(dedup_against)
    holder.append(EvolInstruct(config, sources, backend_for(None), stage, run_seed))
    return holder[0]
