"""`generators.pair_synthesis:` (and `sprout synth`'s `synth:`) one entry per user task, beside its generator."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from sprout.config.base import MODE_HELP, PromptMode, SamplingConfig, Strict
from sprout.config.filters import RuleList

# Records of one task share its instruction: no instruction rules; near-duplicates are judged on the input instead.
PAIR_RULES = ["input_length", "empty_output", "input_equals_output", "trailing_colon", "format_leak", "refusal",
              "input_rouge_l", "exact_duplicate"]


class PairSynthesisConfig(Strict):
    """Pairs for one user task (a task spec under seeds/tasks/): input-first and output-first, labels balanced."""

    task: Path
    mode: PromptMode = Field("chat", description=MODE_HELP)
    n: int = Field(24, gt=0, description="accepted pairs to make")
    input_first_share: float = Field(0.5, ge=0, le=1, description="classification; generation is input-first")
    label_distribution: dict[str, float] | None = Field(None, description="label -> weight; default uniform")
    requests_per_batch: int = Field(16, gt=0)
    max_batches: int = Field(20, gt=0, description="stop even if `n` is not reached")
    examples_shown: int = Field(4, gt=0, description="task examples shown per prompt, drawn afresh each time")
    verify_output_first: bool = Field(False, description="ask the label prompt about output-first inputs too")
    input_sampling: SamplingConfig = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=96)
    label_sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=8)
    output_sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=256)
    rules: RuleList = Field(default_factory=lambda: list(PAIR_RULES))

    @model_validator(mode="after")
    def _weights(self) -> PairSynthesisConfig:
        weights = self.label_distribution
        if weights is not None and (not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values())):
            raise ValueError("label_distribution: weights must be >= 0 with at least one > 0")
        return self
