"""`generators.evol_instruct:` (and `sprout evolve`'s `evol_instruct:`): Evol-Instruct's settings, beside its
generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from sprout.config.base import MODE_HELP, PromptMode, SamplingConfig, Strict
from sprout.config.filters import JudgeConfig, RuleList, UsableJudge

EVOL_OPERATIONS = ["add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth"]
# Evolutions are task-level records with an answer: the instruction rules, the answer rules and instruction dedup.
EVOL_RULES = ["word_count", "scaffold_copy", "empty_output", "refusal", "punct_stopwords_only", "rouge_l"]


def _known_operations(weights: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(EVOL_OPERATIONS))
    if unknown:
        raise ValueError(f"unknown operation(s) {unknown}; valid: {', '.join(EVOL_OPERATIONS)}")
    if not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values()):
        raise ValueError("weights must be >= 0 with at least one > 0")
    return weights


class EvolInstructConfig(Strict):
    """Evol-Instruct (Xu et al., 2023): in-depth and in-breadth evolution in rounds, with the paper's elimination."""

    mode: PromptMode = Field("chat", description=MODE_HELP)
    source: Literal["pool", "seeds", "file"] = Field(
        "pool", description="in `sprout data`: the grown tasks, the seed tasks, or `input` (sprout evolve: --input)")
    input: Path | None = None
    rounds: int = Field(4, gt=0, description="generations: each round gives every row one evolution attempt")
    per_round: int | None = Field(None, gt=0, description="optional cap on attempts per round, for sampling a big "
                                  "dataset: a seeded sample of this many rows is evolved, the rest are left out "
                                  "(and counted); null = every row, as the paper")
    step_rows: int = Field(64, gt=0, description="rows attempted together within a round: a step's answers are "
                           "cached and its lines written at once, so a killed run loses at most one step")
    keep_original: bool = Field(False, description="sprout evolve: write the input rows too, beside their "
                                "evolutions (as WizardLM's data mixes them)")
    operations: Annotated[dict[str, float], AfterValidator(_known_operations)] = Field(
        default_factory=lambda: dict.fromkeys(EVOL_OPERATIONS, 1.0))
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=160)
    response_sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=256)
    judge: UsableJudge = JudgeConfig(name="equal", prompt="judge/evol_equal")
    rules: RuleList = Field(default_factory=lambda: list(EVOL_RULES))

    @model_validator(mode="after")
    def _file_needs_input(self) -> EvolInstructConfig:
        if self.source == "file" and self.input is None:
            raise ValueError("source `file` needs `input: path/to/data.jsonl`")
        return self
