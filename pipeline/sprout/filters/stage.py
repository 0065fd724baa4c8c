"""The filter stage: runs candidates through ordered rules, greedily and in order, and counts every drop.

Modelled on datatrove's filters: a rule returns keep or (drop, reason); the stage counts, per rule, how many
candidates it checked and dropped, and hands back the rejects as data, so nothing leaves without a row saying why.

Order: group rules (they see the whole group), then per-record rules (cheap first, ROUGE-L last), then batch rules
(an LLM judge: one batched call for all survivors). With a judge, a candidate must not enter the dedup pool before
the judge passes it, so survivors are checked by the stateful rules (dedup) once more, in order, and only then
accepted: greedy order and "against everything accepted so far" hold exactly as without a judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sprout.core.records import Record, Rejection
from sprout.filters.rules import Drop, Rule

GroupRule = Callable[[list[Record]], dict[int, str]]


def _as_drop(verdict: str | Drop, rule_name: str) -> Drop:
    if isinstance(verdict, Drop):
        return verdict if verdict.rule else Drop(verdict.reason, verdict.score, rule_name, verdict.neighbour)
    return Drop(verdict, rule=rule_name)


@dataclass
class StageCounts:
    entered: int = 0
    accepted: int = 0
    rules: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> {"checked", "dropped"}, in order

    def tally(self, rule: str, checked: int = 0, dropped: int = 0, before: str | None = None,
              after: str | None = None) -> None:
        """Count for `rule`. A rule seen for the first time goes where its drops happen, so the funnel's
        `remaining` falls at the right step: `before` a rule (a parse failure, before any rule ran), `after` one
        (a judge's unparseable verdicts), or last (a record revoked after it was accepted)."""
        if rule not in self.rules and (before in self.rules or after in self.rules):
            order = list(self.rules)
            at = order.index(before) if before in self.rules else order.index(after) + 1
            self.rules = {name: self.rules[name] for name in order[:at]} | {rule: {"checked": 0, "dropped": 0}} | {
                name: self.rules[name] for name in order[at:]}
        entry = self.rules.setdefault(rule, {"checked": 0, "dropped": 0})
        entry["checked"] += checked
        entry["dropped"] += dropped

    @property
    def dropped(self) -> int:
        return sum(entry["dropped"] for entry in self.rules.values())


class FilterStage:
    def __init__(self, name: str, rules: list[Rule], group_rules: dict[str, GroupRule] | None = None,
                 batch_rules: list | None = None):
        self.name = name
        self.rules = rules
        self.group_rules = group_rules or {}
        self.batch_rules = batch_rules or []
        self.counts = StageCounts()
        order = [*self.group_rules, *(r.name for r in rules), *(r.name for r in self.batch_rules)]
        self._registered = set(order)
        self._first = order[0] if order else None  # parse failures are counted before it: they happen first
        for rule_name in order:
            self.counts.tally(rule_name)

    def run(self, candidates: list[Record], limit: int | None = None
            ) -> tuple[list[Record], list[Rejection], list[Record]]:
        """Filter candidates in order; each one is judged against everything accepted before it.

        With `limit`, judging stops once `limit` are accepted and the unjudged rest is returned as is, to be judged
        later (a generator's backlog) — never dropped.
        """
        verdicts: dict[int, tuple[str, str]] = {}
        for rule_name, group_rule in self.group_rules.items():
            found = group_rule(candidates)
            # Drops are counted when rejected (_reject); a candidate is dropped by the first rule that flags it.
            self.counts.tally(rule_name, checked=len(candidates) - len(verdicts))
            for index, reason in found.items():
                verdicts.setdefault(index, (rule_name, reason))
        accepted: list[Record] = []
        rejected: list[Rejection] = []
        position = 0
        while position < len(candidates) and (limit is None or len(accepted) < limit):
            room = None if limit is None else limit - len(accepted)
            survivors: list[Record] = []
            while position < len(candidates) and (room is None or len(survivors) < room):
                record = candidates[position]
                self.counts.entered += 1
                group_verdict = verdicts.get(position)
                position += 1
                drop = Drop(group_verdict[1], rule=group_verdict[0]) if group_verdict else self._first_failure(record)
                if drop:
                    rejected.append(self._reject(drop, record))
                elif self.batch_rules:
                    survivors.append(record)
                else:
                    self._accept(record, accepted)
                    survivors.append(record)
            if self.batch_rules:
                self._judge_then_accept(survivors, accepted, rejected)
        return accepted, rejected, list(candidates[position:])

    def _first_failure(self, record: Record) -> Drop | None:
        for rule in self.rules:
            verdict = rule.check(record)
            self.counts.tally(rule.name, checked=1)
            if verdict:
                return _as_drop(verdict, rule.name)
        return None

    def _judge_then_accept(self, survivors: list[Record], accepted: list[Record], rejected: list[Rejection]) -> None:
        for rule in self.batch_rules:
            if not survivors:
                return
            verdicts = rule.check_batch(survivors)
            self.counts.tally(rule.name, checked=len(survivors))
            kept = []
            for record, verdict in zip(survivors, verdicts, strict=True):
                if verdict:
                    rejected.append(self._reject(_as_drop(verdict, rule.name), record))
                else:
                    kept.append(record)
            survivors = kept
        stateful = [r for r in self.rules if r.stateful]
        for record in survivors:  # a second look at dedup: earlier survivors of this batch are in the pool now
            drop = next((_as_drop(v, r.name) for r in stateful if (v := r.recheck(record))), None)
            if drop:
                rejected.append(self._reject(drop, record))
            else:
                self._accept(record, accepted)

    def _accept(self, record: Record, accepted: list[Record]) -> None:
        for rule in self.rules:
            rule.accepted(record)
        self.counts.accepted += 1
        record.lineage.stage = self.name
        accepted.append(record)

    def _reject(self, drop: Drop, record: Record) -> Rejection:
        # A reason no rule is registered under (e.g. `judge:quality:unparseable`) counts as its own check, right
        # after the rule it comes from.
        parent = next((name for name in self._registered if drop.rule.startswith(f"{name}:")), None)
        self.counts.tally(drop.rule, checked=0 if drop.rule in self._registered else 1, dropped=1, after=parent)
        return Rejection(rule=drop.rule, reason=drop.reason, record=record, score=drop.score, stage=self.name,
                         neighbour=drop.neighbour)

    def seed_dedup(self, items: list, field: str = "instruction") -> None:
        """Start the pool of every dedup rule on `field` with these (e.g. the seed instructions): candidates must
        differ from them. Records (rather than texts) are named by their ids, so their evolutions can skip them."""
        for rule in self.rules:
            if hasattr(rule, "seed") and (getattr(rule, "field", None) or "instruction") == field:
                rule.seed(dict.fromkeys(items) if items and isinstance(items[0], str) else items)

    def rouge_scores(self) -> list[float]:
        """Nearest-neighbour ROUGE-L of every candidate the dedup rule checked (the report's histogram)."""
        return [s for rule in self.rules if getattr(rule, "scores", None) for s in rule.scores]

    def reject_external(self, rule: str, reason: str, record: Record) -> Rejection:
        """Count a drop decided outside the rules (a parse failure) so the funnel adds up."""
        self.counts.entered += 1
        self.counts.tally(rule, checked=1, dropped=1, before=self._first)
        return Rejection(rule=rule, reason=reason, record=record, stage=self.name)

    def revoke(self, rule: str, reason: str, record: Record) -> Rejection:
        """Turn an accepted record into a reject decided later (e.g. its task went over the target); the dedup
        rules forget it, so it blocks no later candidate."""
        for stateful in self.rules:
            stateful.forget(record)
        self.counts.accepted -= 1
        self.counts.tally(rule, checked=1, dropped=1)
        return Rejection(rule=rule, reason=reason, record=record, stage=self.name)
