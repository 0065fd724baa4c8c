"""The filter stage: runs candidates through ordered rules, greedily and in order, and counts every drop.

Modelled on datatrove's filters: a rule returns keep or (drop, reason); the stage counts, per rule, how many
candidates it checked and dropped, and hands back the rejects as data, so nothing leaves without a row saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sprout.filters.rules import Rule
from sprout.records import Record, Rejection

GroupRule = Callable[[list[Record]], dict[int, str]]


@dataclass
class StageCounts:
    entered: int = 0
    accepted: int = 0
    rules: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> {"checked", "dropped"}, in order

    def tally(self, rule: str, checked: int = 0, dropped: int = 0) -> None:
        entry = self.rules.setdefault(rule, {"checked": 0, "dropped": 0})
        entry["checked"] += checked
        entry["dropped"] += dropped

    @property
    def dropped(self) -> int:
        return sum(entry["dropped"] for entry in self.rules.values())


class FilterStage:
    def __init__(self, name: str, rules: list[Rule], group_rules: dict[str, GroupRule] | None = None):
        self.name = name
        self.rules = rules
        self.group_rules = group_rules or {}
        self.counts = StageCounts()
        for rule_name in [*self.group_rules, *(r.name for r in rules)]:
            self.counts.tally(rule_name)

    def run(self, candidates: list[Record], limit: int | None = None
            ) -> tuple[list[Record], list[Rejection], list[Record]]:
        """Filter candidates in order; each one is judged against everything accepted before it.

        With `limit`, judging stops at the limit-th acceptance and the unjudged rest is returned as is, to be
        judged later (a generator's backlog) — never dropped.
        """
        if limit is not None and limit <= 0:
            return [], [], list(candidates)
        verdicts: dict[int, tuple[str, str]] = {}
        for rule_name, group_rule in self.group_rules.items():
            found = group_rule(candidates)
            fresh = set(found) - set(verdicts)  # a candidate is dropped by the first rule that flags it
            self.counts.tally(rule_name, checked=len(candidates) - len(verdicts), dropped=len(fresh))
            for index, reason in found.items():
                verdicts.setdefault(index, (rule_name, reason))
        accepted: list[Record] = []
        rejected: list[Rejection] = []
        for index, record in enumerate(candidates):
            if limit is not None and len(accepted) >= limit:
                return accepted, rejected, list(candidates[index:])
            self.counts.entered += 1
            verdict = verdicts.get(index) or self._first_failure(record)
            if verdict:
                rejected.append(Rejection(rule=verdict[0], reason=verdict[1], record=record))
                continue
            for rule in self.rules:
                rule.accepted(record)
            self.counts.accepted += 1
            accepted.append(record)
        return accepted, rejected, []

    def _first_failure(self, record: Record) -> tuple[str, str] | None:
        for rule in self.rules:
            reason = rule.check(record)
            self.counts.tally(rule.name, checked=1, dropped=1 if reason else 0)
            if reason:
                return rule.name, reason
        return None

    def reject_external(self, rule: str, reason: str, record: Record) -> Rejection:
        """Count a drop decided outside the rules (a parse failure, a surplus task) so the funnel adds up."""
        self.counts.entered += 1
        self.counts.tally(rule, checked=1, dropped=1)
        return Rejection(rule=rule, reason=reason, record=record)

    def revoke(self, rule: str, reason: str, record: Record) -> Rejection:
        """Turn an accepted record into a reject decided later (e.g. its task got no instance)."""
        self.counts.accepted -= 1
        self.counts.tally(rule, checked=1, dropped=1)
        return Rejection(rule=rule, reason=reason, record=record)
