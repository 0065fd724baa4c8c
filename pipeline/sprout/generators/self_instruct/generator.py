"""Self-Instruct (Wang et al., 2023): grow new tasks from a seed pool, then write instances for each.

Proposals: prompts with 8 numbered instructions (6 seeds + up to 2 machine-made) -> the model continues the list.
New instructions wait in a backlog and pass the task rules in order (ROUGE-L against the seeds and everything
accepted so far). Each batch takes the tasks it needs from the backlog -> a few-shot judge at temperature 0 marks
classification tasks -> instances, output-first for classification (label first, so labels stay balanced),
input-first otherwise -> instance rules. Unreadable replies become counted rejects, never silent drops.
"""

from __future__ import annotations

import random

from sprout.backends.base import Sampling, rejection_rule
from sprout.config.base import SamplingConfig
from sprout.core.parsing import continued_items, parse_instances, parse_numbered_list, parse_yes_no
from sprout.core.prompts import PromptSet, load_prompt
from sprout.core.records import Lineage, Record, Rejection
from sprout.core.seeds import SeedTask
from sprout.generators.protocol import StepResult, reached_goal_or_cap
from sprout.generators.self_instruct.config import SelfInstructConfig

NAME = "self_instruct"
MODES = {True: ("output_first", "Class label:"), False: ("input_first", "Input:")}


class SelfInstruct:
    """Self-Instruct (Wang et al., 2023). Reads: the seed tasks (instructions with worked instances). Writes: new
    tasks, each with the instances written for it (the accepted records), and every proposal, verdict or instance
    that failed (the rejects). Its units of work are new tasks: it is done at `target` of them, or stopped early at
    `max_batches`. Filters through two views of the run's filter stage: `tasks` (new instructions, deduplicated
    against the seeds and every accepted instruction) and `instances`."""

    name, unit = NAME, "tasks"

    def __init__(self, config: SelfInstructConfig, seeds: list[SeedTask], backend, filters, run_seed: int,
                 examples: list[SeedTask] | None = None, log=None):
        self.config, self.seeds, self.backend, self.filters, self.run_seed = config, seeds, backend, filters, run_seed
        self.log = log or (lambda message: None)
        self.batches, self.stopped_early = 0, False
        self.prompts = PromptSet({key: load_prompt(f"self_instruct/{key}") for key in (
            "new_tasks", "is_classification", "input_first", "output_first")}, config.mode)
        self.machine_tasks: list[Record] = []  # accepted tasks with at least one accepted instance
        self.accepted_records: list[Record] = []  # every accepted instance, in order (Evol-Instruct's sources)
        self.backlog: list[Record] = []  # proposed instructions not judged yet, in proposal order
        rng = random.Random(f"{run_seed}:{NAME}:few-shot")
        # Worked examples for the judge and the instance prompts (the seeds, topped up where they lack a kind).
        by_kind = {flag: [s for s in examples or seeds if s.is_classification == flag] for flag in (True, False)}
        half = config.classify_examples // 2
        self.classify_examples = rng.sample(by_kind[True], min(half, len(by_kind[True]))) + rng.sample(
            by_kind[False], min(config.classify_examples - half, len(by_kind[False])))
        rng.shuffle(self.classify_examples)
        self.instance_pool = by_kind

    # The Generator protocol (generators/protocol.py).
    def planned(self) -> int:
        return self.config.target

    def progress(self) -> int:
        return len(self.machine_tasks)

    @property
    def done(self) -> bool:
        return reached_goal_or_cap(self, self.config.target, self.config.max_batches, (
            f"Stopped after max_batches={self.config.max_batches} with {self.progress()} of {self.config.target} "
            "new tasks; raise generators.self_instruct.max_batches to go on."))

    def step(self) -> StepResult:
        result = self.run_batch(self.batches, self.config.target - self.progress())
        self.batches += 1
        return result

    def finish(self) -> StepResult:
        why = "the run stopped at max_batches first" if self.stopped_early else "the target was met first"
        return StepResult(rejections=self.drain_backlog(why))

    def summarize(self, summary) -> None:
        summary.new_tasks += self.progress()

    def _sampling(self, cfg: SamplingConfig, batch: int, stop: tuple[str, ...] = ()) -> Sampling:
        return cfg.to_sampling(seed=self.run_seed * 100_003 + batch, stop=stop)

    def _lineage(self, batch: int, operation: str, prompts: list[str], sampling: Sampling, **extra) -> Lineage:
        return Lineage(generator=NAME, operation=operation, round=batch, model=self.backend.model_id,
                       prompts={p: self.prompts[p].sha for p in prompts}, sampling=sampling.for_lineage(), **extra)

    def run_batch(self, batch: int, needed: int) -> StepResult:
        """Grow up to `needed` new tasks (`units`: how many it grew). Takes a little more than needed (half the tasks
        of a small model get no usable instance); tasks beyond the target are then rejected as `target_reached`,
        whole."""
        result, new_tasks = StepResult(), []
        take = min(self.config.tasks_per_batch, 2 * needed)
        if len(self.backlog) < 2 * take:
            self.backlog += self._propose(batch, result)
        tasks, rejected, self.backlog = self.filters.tasks.run(self.backlog, limit=take)
        result.rejections += rejected
        for task, records in self._instances(batch, self._classify(batch, tasks, result), result):
            accepted, rejected, _ = self.filters.instances.run(records)
            result.rejections += rejected
            if accepted and len(new_tasks) >= needed:
                result.rejections += [self.filters.instances.revoke(
                    "target_reached", "the target was met by earlier tasks of this batch", r) for r in accepted]
            elif accepted:
                result.records += accepted
                new_tasks.append(task)
        self.machine_tasks += new_tasks
        self.accepted_records += result.records
        result.units = len(new_tasks)
        return result

    def drain_backlog(self, reason: str) -> list[Rejection]:
        """At the end of a run: proposals never judged are still written down, as rejects with the reason."""
        leftovers, self.backlog = self.backlog, []
        return [self.filters.tasks.reject_external("not_needed", reason, r) for r in leftovers]

    def _propose(self, batch: int, result: StepResult) -> list[Record]:
        cfg, rng = self.config, random.Random(f"{self.run_seed}:{NAME}:{batch}")
        sampling = self._sampling(cfg.sampling, batch, stop=(f"\n{cfg.list_stops_at}.", f"\n{cfg.list_stops_at} ."))
        requests = []
        for _ in range(cfg.requests_per_batch):
            machine = rng.sample(self.machine_tasks, min(cfg.in_context - cfg.from_seeds, len(self.machine_tasks)))
            shown_seeds = rng.sample(self.seeds, cfg.in_context - len(machine))
            shown = [s.instruction for s in shown_seeds] + [m.instruction for m in machine]
            requests.append((self.prompts.build("new_tasks", tasks=shown, up_to=cfg.list_stops_at - 1), shown_seeds,
                             machine))
        replies = self.backend.generate([r[0] for r in requests], sampling, generator=NAME)
        proposals = []
        for (_, shown_seeds, machine), (reply,) in zip(requests, replies, strict=True):
            lineage = self._lineage(batch, "new_task", ["new_tasks"], sampling,
                                    seed_ids=[s.id for s in shown_seeds], parent_ids=[m.id for m in machine])
            first = cfg.in_context + 1  # the prompt pre-fills this number; the reply continues after it
            items = continued_items(parse_numbered_list(f"{first}. {reply.text}"), first, cfg.list_stops_at)
            why = ("parse:truncated", "the reply hit the length limit; discarded whole") \
                if reply.finish_reason == "length" else ("parse:no_items", "no new numbered instruction in the "
                                                         "reply") if not items else None
            if why:  # the paper discards a reply cut off by the length limit whole
                raw = Record(instruction="", lineage=lineage, raw=reply.text)
                result.rejections.append(self.filters.tasks.reject_external(*rejection_rule(reply, *why), raw))
            else:
                proposals += [Record(instruction=item, lineage=lineage) for item in items]
        return proposals

    def _classify(self, batch: int, tasks: list[Record], result: StepResult) -> list[tuple[Record, bool]]:
        if not tasks:
            return []
        sampling = self._sampling(self.config.classify_sampling, batch)
        examples = [{"instruction": s.instruction, "is_classification": s.is_classification}
                    for s in self.classify_examples]
        prompts = [self.prompts.build("is_classification", examples=examples, task=t.instruction) for t in tasks]
        labelled = []
        for task, (reply,) in zip(tasks, self.backend.generate(prompts, sampling, generator=NAME), strict=True):
            verdict = parse_yes_no(reply.text)
            if verdict is None:
                bad = task.model_copy(update={"raw": reply.text})
                result.rejections.append(self.filters.instances.reject_external(*rejection_rule(
                    reply, "parse:is_classification", "the classification judge answered neither Yes nor No"), bad))
            else:
                labelled.append((task, verdict))
        return labelled

    def _instances(self, batch: int, labelled: list[tuple[Record, bool]], result: StepResult):
        if not labelled:
            return []
        cfg, rng = self.config, random.Random(f"{self.run_seed}:{NAME}:instances:{batch}")
        sampling = self._sampling(cfg.instance_sampling, batch, stop=("\nTask:",))
        prompts = []
        for task, is_clf in labelled:
            # Fresh examples per task: a small model copies the style of its examples, so fixed ones narrow the data.
            shown = rng.sample(self.instance_pool[is_clf], cfg.instance_examples)
            prompts.append(self.prompts.build(
                MODES[is_clf][0], examples=[{"instruction": s.instruction, "instances": s.instances} for s in shown],
                task=task.instruction, max_instances=cfg.instances_per_task))
        groups = []
        replies = self.backend.generate(prompts, sampling, generator=NAME)
        for (task, is_clf), (reply,) in zip(labelled, replies, strict=True):
            mode, prefix = MODES[is_clf]
            pairs = parse_instances(prefix + reply.text, mode)
            lineage = self._lineage(batch, mode, ["new_tasks", "is_classification", mode], sampling,
                                    task_id=task.id, seed_ids=task.lineage.seed_ids,
                                    parent_ids=task.lineage.parent_ids)
            if not pairs:
                bad = Record(instruction=task.instruction, lineage=lineage, raw=reply.text)
                result.rejections.append(self.filters.instances.reject_external(*rejection_rule(
                    reply, "parse:no_instances", f"no {prefix} ... pairs in the reply"), bad))
                continue
            if reply.finish_reason == "length":
                inp, out = pairs.pop()  # the last pair may be cut mid-sentence
                cut = Record(instruction=task.instruction, input=inp, output=out, lineage=lineage, raw=reply.text)
                result.rejections.append(self.filters.instances.reject_external(
                    "parse:truncated_instance", "the reply hit the length limit inside this instance", cut))
            kind = "classification" if is_clf else "generation"
            records = [Record(instruction=task.instruction, input=inp, output=out, kind=kind,
                              label=out if is_clf else None, lineage=lineage, raw=None) for inp, out in pairs]
            groups.append((task, self._counted(records, reply.text, result)))
        return groups

    def _counted(self, records: list[Record], raw: str, result: StepResult) -> list[Record]:
        """Instances the reply should not have held become counted rejects, never a silent cut: a label written over
        several lines, and instances past `instances_per_task`."""
        kept, stage, limit = [], self.filters.instances, self.config.instances_per_task
        for record in records:
            if record.label is not None and "\n" in record.label:
                lines = len(record.label.splitlines())
                result.rejections.append(stage.reject_external(
                    "parse:label", f"the class label runs over {lines} lines", record.model_copy(update={"raw": raw})))
            elif len(kept) >= limit:
                result.rejections.append(stage.reject_external(
                    "max_instances", f"the reply held more than generators.self_instruct.instances_per_task={limit} "
                    "instances", record))
            else:
                kept.append(record)
        return kept
