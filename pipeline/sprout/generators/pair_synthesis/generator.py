"""Pair synthesis for one user task (a task spec): input-first and output-first, with the label mix enforced.

Input-first asks for a new input, then, in a separate call, for its label (classification) or output (generation).
Output-first picks the label first and asks for an input that has it. Input-first over-represents whatever label
the model finds natural; so each batch measures the labels accepted so far and points its output-first requests at
the labels still short of their quota. A label whose quota is full takes no more records (`label_quota_full`), so
the accepted set ends on the asked distribution. Replies that name no label of the set are counted rejects.
"""

from __future__ import annotations

import random
from collections import Counter

from sprout.backends.base import Sampling, rejection_rule
from sprout.config.base import SamplingConfig
from sprout.core.apportion import quotas
from sprout.core.parsing import clean_input, match_label
from sprout.core.prompts import PromptSet, load_prompt
from sprout.core.records import Lineage, Record
from sprout.filters.stage import FilterStage
from sprout.generators.pair_synthesis.config import PairSynthesisConfig
from sprout.generators.pair_synthesis.task_spec import TaskSpec
from sprout.generators.protocol import StepResult, reached_goal_or_cap

NAME = "pair_synthesis"




class PairSynthesis:
    """Pair synthesis for one user task (see the module docstring). Reads: a task spec (instruction, labels, worked
    examples). Writes: (input, output) pairs for that task, input-first and output-first, on the configured label
    mix; every unreadable, off-label or over-quota candidate as a reject. Its units of work are accepted pairs: it is
    done at `n`, or stopped early at `max_batches`. Filters through the run's `pairs:<task>` view (synthesised inputs
    deduplicated against the task's examples and every accepted input of the task)."""

    unit = "pairs"

    def __init__(self, config: PairSynthesisConfig, spec: TaskSpec, backend, stage: FilterStage, run_seed: int,
                 log=None):
        self.config, self.spec, self.backend, self.stage, self.run_seed = config, spec, backend, stage, run_seed
        self.name = f"{NAME}:{spec.name}"
        self.log = log or (lambda message: None)
        self.batches, self.stopped_early = 0, False
        self.prompts = PromptSet({key: load_prompt(f"synth/{key}")
                                  for key in ("input_first", "output_first", "label", "output")}, config.mode)
        self.task_vars = spec.model_dump()
        self.task_id = f"task:{spec.name}"
        labels = spec.labels or []
        weights = config.label_distribution or dict.fromkeys(labels, 1.0)
        self.target = quotas(config.n, weights) if spec.is_classification else {}
        self.accepted: Counter[str] = Counter()  # label -> accepted so far ("" for generation tasks)
        self.produced: dict[str, Counter[str]] = {"input_first": Counter(), "output_first": Counter()}
        self.by_mode: dict[str, Counter[str]] = {"input_first": Counter(), "output_first": Counter()}
        stage.seed_dedup([e.input for e in spec.examples], field="input")

    # The Generator protocol (generators/protocol.py).
    def planned(self) -> int:
        return self.config.n

    def progress(self) -> int:
        return sum(self.accepted.values())

    def step(self) -> StepResult:
        before = self.progress()
        result = self.run_batch(self.batches)
        self.batches += 1
        result.units = self.progress() - before
        return result

    def finish(self) -> StepResult:
        return StepResult()

    def summarize(self, summary) -> None:
        summary.synthesis.append(self.stats())
        self.log(f"pair synthesis {self.spec.name}: {self.progress()} of {self.config.n} pairs, labels "
                 f"{dict(self.accepted)}")

    @property
    def done(self) -> bool:
        return reached_goal_or_cap(self, self.config.n, self.config.max_batches, (
            f"pair synthesis {self.spec.name}: stopped after max_batches={self.config.max_batches} with "
            f"{self.progress()} of {self.config.n} pairs; raise max_batches to go on."))

    def needs(self) -> dict[str, int]:
        return {label: max(0, quota - self.accepted[label]) for label, quota in self.target.items()}

    def stats(self) -> dict:
        """The label balance for the report: target, what each mode produced (before quotas), what was accepted."""
        return {"task": self.spec.name, "kind": self.spec.kind, "n": self.config.n, "target": self.target,
                "produced": {m: dict(c) for m, c in self.produced.items() if c},
                "accepted": {m: dict(c) for m, c in self.by_mode.items() if c}}

    def _sampling(self, cfg: SamplingConfig, batch: int, step: int) -> Sampling:
        return cfg.to_sampling(seed=self.run_seed * 100_003 + 31 * batch + step, stop=("\n\n",) if step == 0 else ())

    def plan(self, batch: int) -> list[str | None]:
        """One entry per request: None for input-first, a label for output-first (aimed at the largest needs).

        At most twice the pairs still missing are requested (about half survive on small models). Input-first gets
        its configured share, scaled by the measured (add-one smoothed) share of its labels that are still needed:
        once input-first only produces labels whose quota is full, its requests go to output-first instead.
        """
        remaining = self.config.n - sum(self.accepted.values())
        size = min(self.config.requests_per_batch, 2 * remaining)
        rng = random.Random(f"{self.run_seed}:{NAME}:{self.spec.name}:{batch}")
        if not self.spec.is_classification:
            return [None] * size
        needs = self.needs()
        seen = self.produced["input_first"]
        share = {label: (seen[label] + 1) / (sum(seen.values()) + len(needs)) for label in needs}
        useful = sum(share[label] for label, need in needs.items() if need > 0)
        n_input_first = round(size * self.config.input_first_share * useful)
        n_output_first = size - n_input_first
        # Expect input-first to keep its skew, and aim output-first at what it will leave short.
        wanted = {label: need - n_input_first * share[label] for label, need in needs.items()
                  if need - n_input_first * share[label] > 0}
        wanted = wanted or {label: need for label, need in needs.items() if need > 0}
        aimed = quotas(n_output_first, wanted) if wanted and n_output_first else {}
        labels = [label for label, count in aimed.items() for _ in range(count)]
        rng.shuffle(labels)
        return [None] * (size - len(labels)) + labels

    def run_batch(self, batch: int) -> StepResult:
        result, rng = StepResult(), random.Random(f"{self.run_seed}:{NAME}:{self.spec.name}:examples:{batch}")
        plan = self.plan(batch)
        shown = [rng.sample(self.spec.examples, min(self.config.examples_shown, len(self.spec.examples)))
                 for _ in plan]
        sampling = self._sampling(self.config.input_sampling, batch, 0)
        prompts = [self.prompts.build("input_first", task=self.task_vars, examples=self._dump(ex)) if label is None
                   else self.prompts.build("output_first", task=self.task_vars, examples=self._dump(ex), label=label)
                   for label, ex in zip(plan, shown, strict=True)]
        replies = self.backend.generate(prompts, sampling, generator=NAME)
        candidates: list[tuple[Record, str | None]] = []  # (record with its input, label asked for or None)
        for label, ex, (reply,) in zip(plan, shown, replies, strict=True):
            mode = "input_first" if label is None else "output_first"
            record = Record(instruction=self.spec.instruction, input=clean_input(reply.text), raw=reply.text,
                            kind=self.spec.kind, lineage=self._lineage(batch, mode, ex, sampling))
            if reply.finish_reason == "length" or not record.input:
                why = "the reply hit the length limit" if record.input else "the reply holds no input"
                result.rejections.append(self.stage.reject_external(*rejection_rule(reply, "parse:input", why),
                                                                    record))
            else:
                candidates.append((record, label))
        finished = self._answer(batch, candidates, result)
        self._accept(finished, result)
        return result

    def _dump(self, examples) -> list[dict]:
        return [e.model_dump() for e in examples]

    def _lineage(self, batch: int, mode: str, shown, sampling: Sampling) -> Lineage:
        steps = [mode] + (["label"] if self.spec.is_classification else ["output"]) * (mode == "input_first")
        return Lineage(generator=NAME, operation=mode, task_id=self.task_id, round=batch, model=self.backend.model_id,
                       seed_ids=[f"{self.spec.name}:{self.spec.examples.index(e)}" for e in shown],
                       prompts={step: self.prompts[step].sha for step in steps}, sampling=sampling.for_lineage())

    def _answer(self, batch: int, candidates, result: StepResult) -> list[Record]:
        """Second calls: labels (input-first, and output-first when verifying) or outputs (generation)."""
        clf = self.spec.is_classification
        asked = [(r, label) for r, label in candidates if label is None or (clf and self.config.verify_output_first)]
        key, cfg = ("label", self.config.label_sampling) if clf else ("output", self.config.output_sampling)
        sampling = self._sampling(cfg, batch, 1)
        examples = self._dump(self.spec.examples[: self.config.examples_shown])
        replies = self.backend.generate([self.prompts.build(key, task=self.task_vars, examples=examples,
                                                                  input=r.input) for r, _ in asked],
                                        sampling, generator=NAME) if asked else []
        answers = {id(r): reply for (r, _), (reply,) in zip(asked, replies, strict=True)}
        finished = []
        for record, label in candidates:
            reply = answers.get(id(record))
            if reply is not None and reply.failed:
                result.rejections.append(self.stage.reject_external("backend_error", reply.error, record))
                continue
            if not clf:
                if reply.finish_reason == "length":
                    bad = record.model_copy(update={"output": reply.text})
                    result.rejections.append(self.stage.reject_external(
                        "parse:output", "the output hit the length limit", bad))
                else:
                    finished.append(Record(instruction=record.instruction, input=record.input,
                                           output=reply.text.strip(), kind="generation", lineage=record.lineage))
                continue
            said = match_label(reply.text, self.spec.labels) if reply else label
            mode = record.lineage.operation
            if said is None:
                bad = record.model_copy(update={"raw": reply.text})
                result.rejections.append(self.stage.reject_external(
                    "label_not_in_set", f"the answer names none of the labels {self.spec.labels}", bad))
                continue
            self.produced[mode][said] += 1
            if label is not None and said != label:  # output-first, verified: the input does not have its label
                bad = record.model_copy(update={"raw": reply.text, "label": label, "output": label})
                result.rejections.append(self.stage.reject_external(
                    "label_mismatch", f"written for {label!r} but labelled {said!r}", bad))
                continue
            finished.append(Record(instruction=record.instruction, input=record.input, output=said,
                                   kind="classification", label=said, lineage=record.lineage))
        return finished

    def _accept(self, finished: list[Record], result: StepResult) -> None:
        """Quota first (a full label takes nothing more, so it never enters the dedup pool), then the rules;
        accepted records past a quota within this batch are revoked, in order."""
        needs = self.needs() if self.spec.is_classification else {"": self.config.n - sum(self.accepted.values())}
        open_ = [r for r in finished if needs[r.label or ""] > 0]
        for record in finished:
            if needs[record.label or ""] <= 0:
                why = f"label {record.label!r} already has its {self.target[record.label]}" if record.label \
                    else f"the task already has its {self.config.n} pairs"
                result.rejections.append(self.stage.reject_external("label_quota_full", why, record))
        accepted, rejected, _ = self.stage.run(open_)
        result.rejections += rejected
        for record in accepted:
            key = record.label or ""
            if needs[key] <= 0:
                result.rejections.append(self.stage.revoke("label_quota_full", "the quota filled earlier in this "
                                                           "batch", record))
                continue
            needs[key] -= 1
            self.accepted[key] += 1
            self.by_mode[record.lineage.operation][record.label or "(generation)"] += 1
            result.records.append(record)
