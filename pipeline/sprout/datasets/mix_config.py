"""The `sprout mix` config: sources, stages and the pretraining-text share, checked before anything is read.

Checks that need only the config (unknown source names, impossible shares, missing files) are errors naming the
key and its line, like every sprout config; checks that need the data (too few rows) name the key the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field

from sprout.config.base import Strict
from sprout.config.loader import line_of, load_config
from sprout.config.paths import OutputFolder
from sprout.core.errors import UserError

PRETRAINING = "pretraining"  # the provenance `source` of pretraining-text rows, so no source may take the name
FORMATS = ("auto", "sprout", "alpaca", "messages", "text")


def _file(path: Path) -> Path:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise ValueError(f"{path}: {what}. Fix: check the path (relative to where sprout runs; `make data` writes "
                         "out/data/examples.jsonl)")
    return path


def _source_file(path: Path) -> Path:
    if path.suffix == ".txt":
        raise ValueError(f"{path} is plain text, not training rows. Fix: give it as `pretraining.path`, or as a JSONL "
                         'of {"text": ...} rows')
    return _file(path)


def _text_file(path: Path) -> Path:
    if path.suffix in (".json", ".jsonl"):
        raise ValueError(f"{path} holds JSON rows, not plain text. Fix: add it under `sources:` (format: text), or "
                         "point this key at a .txt file")
    return _file(path)


def _stage_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"{name!r}: use letters, digits, `_`, `.`, `-` (it names the stage's output file)")
    return name


def _values(value: Any) -> Any:
    return {k: v if isinstance(v, list) else [v] for k, v in value.items()} if isinstance(value, dict) else value


Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, lt=1)]


class SourceConfig(Strict):
    path: Annotated[Path, AfterValidator(_source_file)]
    format: Literal[FORMATS] = Field("auto", description="auto: any row the trainer takes; else every row must be it")
    where: Annotated[dict[str, list[str | int | float | bool | None]], BeforeValidator(_values)] = Field(
        default_factory=dict, description="dotted field -> value or list of values; keeps matching rows only")


class PretrainingConfig(Strict):
    path: Annotated[Path, AfterValidator(_text_file)]
    share: Share = Field(0.05, description="default share of every stage's rows; a stage may set its own")
    chunk: Literal["paragraphs", "words"] = "paragraphs"
    words: int = Field(128, gt=0, description="chunk: words -> pieces of this many words (the last may be shorter)")
    min_words: int = Field(1, gt=0, description="chunks with fewer words (headings, stray lines) are not used")
    replace: bool = Field(False, description="false: each chunk is used at most once in the whole mix")


class StageConfig(Strict):
    name: Annotated[str, AfterValidator(_stage_name)]
    size: int = Field(gt=0, description="rows in the stage's file")
    shares: dict[str, Weight] = Field(min_length=1, description="source -> weight; normalised over the stage")
    replace: bool = Field(False, description="draw source and kept rows with replacement")
    keep_from_previous: Share = Field(0.0, description="share of rows drawn from the previous stage's output")
    pretraining_share: Share | None = Field(None, description="default: pretraining.share")


class MixConfig(Strict):
    out_dir: OutputFolder = Path("out/mix")
    seed: int = 42
    sources: dict[str, SourceConfig] = Field(min_length=1)
    pretraining: PretrainingConfig | None = None
    stages: list[StageConfig] = Field(min_length=1)

    def pretraining_share(self, stage: StageConfig) -> float:
        if stage.pretraining_share is not None:
            return stage.pretraining_share
        return self.pretraining.share if self.pretraining else 0.0


class Where:
    """Names a config key the way load_config does: `file:line: key 'a.b'`, or the `--set` that gave it."""

    def __init__(self, path: Path | None, overrides: list[str]):
        self.path, self.overrides = path, overrides
        try:
            self.root = yaml.compose(Path(path).read_text(encoding="utf-8")) if path else None
        except (OSError, yaml.YAMLError, ValueError):  # load_config read it already; this only finds lines
            self.root = None

    def __call__(self, *loc: str | int) -> str:
        key = ".".join(str(p) for p in loc)
        for assignment in self.overrides:
            set_key = tuple(assignment.partition("=")[0].split("."))
            if tuple(str(p) for p in loc[:len(set_key)]) == set_key:
                return f"--set {assignment[:200]!r}: key {key!r}"
        line = line_of(self.root, loc)
        return f"{self.path or 'config'}{f':{line}' if line else ''}: key {key!r}"


def check(cfg: MixConfig, where: Where) -> list[str]:
    """Rules across keys; every problem, each naming its key."""
    problems = []
    if PRETRAINING in cfg.sources:
        problems.append(f"{where('sources', PRETRAINING)}: the name is kept for pretraining-text rows; rename it")
    seen: set[str] = set()
    for i, stage in enumerate(cfg.stages):
        if stage.name in seen:
            problems.append(f"{where('stages', i, 'name')}: stage {stage.name!r} is named twice; names must differ")
        seen.add(stage.name)
        for name in stage.shares:
            if name not in cfg.sources:
                problems.append(f"{where('stages', i, 'shares', name)}: unknown source {name!r}; sources: "
                                f"{', '.join(cfg.sources)}")
        if not any(w > 0 for w in stage.shares.values()):
            problems.append(f"{where('stages', i, 'shares')}: every weight is 0; give at least one source a weight > 0")
        if i == 0 and stage.keep_from_previous > 0:
            problems.append(f"{where('stages', 0, 'keep_from_previous')}: the first stage has no previous stage; "
                            "remove the key")
        if stage.pretraining_share and cfg.pretraining is None:
            problems.append(f"{where('stages', i, 'pretraining_share')}: there is no `pretraining:` text to draw from; "
                            "add `pretraining: {path: some.txt}` or remove the key")
        if stage.keep_from_previous + cfg.pretraining_share(stage) >= 1:
            problems.append(f"{where('stages', i)}: keep_from_previous ({stage.keep_from_previous}) + pretraining "
                            f"share ({cfg.pretraining_share(stage)}) leave no room for the stage's sources; keep the "
                            "sum < 1")
    return problems


def load_mix_config(path: Path | None, overrides: list[str]) -> tuple[MixConfig, Where]:
    cfg = load_config(path, overrides, model=MixConfig, what="mix config")
    where = Where(path, list(overrides))
    if problems := check(cfg, where):
        raise UserError("invalid mix config; nothing was run:", problems)
    return cfg, where
