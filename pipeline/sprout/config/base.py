"""What every config section is built from: strict models, sampling settings (and their one conversion to the
backends' `Sampling`), prices and the prompt modes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sprout.backends.base import Sampling


class Strict(BaseModel):
    """A config section: an unknown key is an error (a typo must not be silently ignored), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingConfig(Strict):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, gt=0)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def to_sampling(self, seed: int = 0, stop: tuple[str, ...] = (), n: int = 1) -> Sampling:
        """The backends' `Sampling` for these settings: the one conversion, so no caller drops a setting (the
        judge's own copy once lost the penalties). `seed`, `stop` and `n` belong to the call, not the config."""
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, stop=stop, n=n,
                        seed=seed, presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty)


class PriceConfig(Strict):
    """What the model's provider charges, per million tokens; cached answers cost nothing."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    currency: str = "USD"


PromptMode = Literal["chat", "completion"]
MODE_HELP = "chat: messages through the chat template; completion: one raw text (base models), see prompts/README.md"
