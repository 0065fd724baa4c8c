"""The LLM-judge rule: a prompt file, a model, a verdict parser, and which verdicts drop.

It runs last in a stage, as a batch rule: one batched (and cached) call judges every candidate that passed the
cheap rules. An answer with none of the expected verdict words is its own counted reason, `<rule>:unparseable`,
never a silent pass. Users: Evol-Instruct's "did the evolution change the instruction" check, a quality check.
"""

from __future__ import annotations

from sprout.backends.base import Sampling
from sprout.core.parsing import parse_verdict
from sprout.core.prompts import Prompt
from sprout.core.records import Record
from sprout.filters.rules import Drop


class JudgeRule:
    stateful = False

    def __init__(self, name: str, prompt: Prompt, backend, sampling: Sampling, drop: list[str], keep: list[str],
                 context=None):
        overlap = {v.lower() for v in drop} & {v.lower() for v in keep}
        if overlap:
            raise ValueError(f"verdicts both drop and keep: {sorted(overlap)}")
        self.name = f"judge:{name}"
        self.prompt, self.backend, self.sampling = prompt, backend, sampling
        self.drop, self.keep = drop, keep
        self.context = context or (lambda record: {})  # extra prompt variables, e.g. Evol's parent instruction

    def check_batch(self, records: list[Record]) -> list[Drop | None]:
        conversations = [self.prompt.render(record=record.model_dump(mode="json"), **self.context(record))
                         for record in records]
        replies = self.backend.generate(conversations, self.sampling, generator=self.name)
        verdicts = []
        for (reply,) in replies:
            verdict = None if reply.failed else parse_verdict(reply.text, self.drop + self.keep)
            if reply.failed:  # no verdict at all: dropped, named as such; a rerun asks the judge again
                verdicts.append(Drop(reply.error, rule="backend_error"))
            elif verdict is None:
                verdicts.append(Drop(f"the judge answered none of {self.drop + self.keep}: {reply.text[:80]!r}",
                                     rule=f"{self.name}:unparseable"))
            elif verdict in self.drop:
                verdicts.append(Drop(f"the judge answered {verdict!r}"))
            else:
                verdicts.append(None)
        return verdicts
