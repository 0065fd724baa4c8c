"""`sprout data`'s config: where the run goes, its seeds, cache and backend, the generators in the order they run,
and the shared `filters:` section. `RunConfig` is the root every command's config is built on."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.config.base import Strict
from sprout.config.filters import FilterConfig, unmet_needs
from sprout.config.paths import OutputFile, OutputFolder
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.flan.config import FlanConfig
from sprout.generators.pair_synthesis.config import PairSynthesisConfig
from sprout.generators.self_instruct.config import SelfInstructConfig


class RunConfig(Strict):
    """A command's whole config. A rule listed anywhere in it (a generator's `rules`) must have what it needs under
    the config's `filters:` section (eval files for `decontamination`); `filters:` checks its own lists itself."""

    @model_validator(mode="after")
    def _rule_needs_met(self) -> RunConfig:
        filters = getattr(self, "filters", None)
        if isinstance(filters, FilterConfig) and (problem := unmet_needs(self, filters, "filters.")):
            raise ValueError(problem)
        return self


class GeneratorsConfig(Strict):
    self_instruct: SelfInstructConfig = SelfInstructConfig()
    evol_instruct: EvolInstructConfig | None = None  # set it to evolve the grown tasks after Self-Instruct
    pair_synthesis: list[PairSynthesisConfig] = Field(default_factory=list)  # one entry per user task
    flan: FlanConfig | None = None


class DataConfig(RunConfig):
    out_dir: OutputFolder = Path("out/data")
    seed: int = 42
    seeds: list[Path] = Field(default_factory=lambda: [Path("seeds/general.jsonl")], min_length=1)
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = LocalBackendConfig()
    generators: GeneratorsConfig = GeneratorsConfig()
    filters: FilterConfig = FilterConfig()
