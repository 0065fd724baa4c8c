"""FLAN-style template expansion: every sampled (row, template) pair becomes a record. No model call.

Rows come from the template set's own data file (JSONL/JSON, read with file:line errors) or from any file the
`datasets` library loads (CSV, Parquet, JSON, a saved dataset folder), with a placeholder -> column mapping. Each
row gets `templates_per_row` templates, `inverted_share` of them inverted, drawn by an RNG seeded from the run seed
and the row's id, so a row's templates do not change when other rows are added or removed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record
from sprout.filters.stage import FilterStage
from sprout.generators.flan.config import FlanConfig, FlanTaskConfig
from sprout.generators.flan.templates import (
    FlanTemplate,
    TemplateSet,
    check_sandbox,
    check_templates,
    choice_word,
    load_template_set,
)
from sprout.generators.protocol import StepResult
from sprout.io.dataset_io import read_rows

NAME = "flan"
DATASETS_BUILDERS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json",
                     ".txt": "text", ".arrow": "arrow"}


@dataclass
class FlanSource:
    templates: TemplateSet
    rows: list[tuple[str, dict]]  # (row id such as "sentiment.jsonl:3", the row by placeholder name)


def _read_any(path: Path, split: str) -> list[tuple[str, dict]]:
    """Rows with ids: JSON(L) through sprout's reader (errors name file:line), the rest through `datasets`."""
    if not path.exists():
        raise UserError(f"{path}: no such data file. Fix: point `data:` at a JSONL/CSV/Parquet file or a dataset "
                        "folder saved with save_to_disk.")
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        _, rows = read_rows(path)
        problems = [f"{path}:{line}: expected a JSON object, got {type(row).__name__}" for line, row in rows
                    if not isinstance(row, dict)]
        if problems:
            raise UserError(f"{len(problems)} bad row(s) in {path}; nothing was run:", problems[:50])
        return [(f"{path.name}:{line}", row) for line, row in rows]
    import datasets

    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            loaded = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        elif path.suffix in DATASETS_BUILDERS:
            extra = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
            loaded = datasets.load_dataset(DATASETS_BUILDERS[path.suffix], data_files=str(path), split=split, **extra)
        else:
            raise UserError(f"{path}: unknown data format {path.suffix!r}; use one of "
                            f"{', '.join(DATASETS_BUILDERS)} or a saved dataset folder.")
    except (ValueError, KeyError, FileNotFoundError, datasets.exceptions.DatasetGenerationError) as exc:
        raise UserError(f"{path}: cannot load it with `datasets` (split {split!r}): {exc}") from None
    return [(f"{path.name}:{i + 1}", dict(row)) for i, row in enumerate(loaded)]


def load_source(entry: FlanTaskConfig, key: str, root: Path | None = None) -> FlanSource:
    """A template set and its rows, checked against each other before anything runs. `key` names the config entry
    in messages (e.g. generators.flan.tasks[0])."""
    templates = load_template_set(entry.task, *([root] if root else []))
    path = entry.data or templates.spec.data
    if path is None:
        raise UserError(f"{key}: {templates.path} names no `data:` file; set `data:` in the config entry.")
    raw_rows = _read_any(Path(path), entry.split)[: entry.max_rows]
    if not raw_rows:
        raise UserError(f"{path}: no rows. Fix: point {key}.data at a file with rows.")
    columns = set(raw_rows[0][1])
    missing = {p: c for p, c in entry.fields.items() if c not in columns}
    if missing:
        raise UserError(f"{key}.fields: column(s) {sorted(missing.values())} not in {path} "
                        f"(columns: {sorted(columns)}).")
    label_field = templates.spec.label_field
    rows, problems = [], []
    for row_id, raw in raw_rows:
        row = {p: raw.get(c) for p, c in entry.fields.items()} | {k: v for k, v in raw.items()
                                                                 if k not in entry.fields.values()}
        empty = sorted(k for k, v in row.items() if k != label_field and (v is None or str(v).strip() == ""))
        if empty:
            problems.append(f"{row_id}: empty field(s) {empty}")
        if templates.classification and choice_word(templates.spec.answer_choices, row.get(label_field)) is None:
            problems.append(f"{row_id}: label {row.get(label_field)!r} has no answer word in "
                            f"{templates.spec.answer_choices}")
        rows.append((row_id, {k: v if k == label_field else str(v) for k, v in row.items()}))
    if problems:
        raise UserError(f"{len(problems)} unusable row(s) for FLAN task {entry.task!r}; nothing was run:",
                        problems[:50])
    check_templates(templates, set(rows[0][1]))
    check_sandbox(templates, set(rows[0][1]))  # a template reaching for Python internals, before anything runs
    return FlanSource(templates, rows)


class FlanExpansion:
    """FLAN-style template expansion (Wei et al., 2022; Longpre et al., 2023). Reads: template sets (prompts/flan/)
    and their rows. Writes: one record per sampled (row, template) pair, no model call; rows a rule drops as
    rejects. Its units of work are rows; a step is one template set. Filters through the run's `flan` view."""

    name, unit = NAME, "rows"

    def __init__(self, config: FlanConfig, stage: FilterStage, run_seed: int, sources: list[FlanSource] = (),
                 log=None):
        self.config, self.stage, self.run_seed = config, stage, run_seed
        self.sources, self.log = list(sources), log or (lambda message: None)
        self.stats: list[dict] = []
        self.rows_done, self.stopped_early = 0, False

    # The Generator protocol (generators/protocol.py).
    def planned(self) -> int:
        return sum(len(source.rows) for source in self.sources)

    def progress(self) -> int:
        return self.rows_done

    @property
    def done(self) -> bool:
        return len(self.stats) >= len(self.sources)

    def step(self) -> StepResult:
        source = self.sources[len(self.stats)]
        result = self.run(source)
        self.log(f"FLAN {source.templates.name}: {len(result.records)} records from {len(source.rows)} rows")
        return result

    def finish(self) -> StepResult:
        return StepResult()

    def summarize(self, summary) -> None:
        summary.flan = self.stats

    def choose(self, templates: list[FlanTemplate], task: str, row_id: str) -> list[FlanTemplate]:
        k = self.config.templates_per_row
        if k is None or k >= len(templates):
            return list(templates)
        rng = random.Random(f"{self.run_seed}:{NAME}:{task}:{row_id}")
        inverted = [t for t in templates if t.inverted]
        plain = [t for t in templates if not t.inverted]
        n_inverted = min(len(inverted), round(k * self.config.inverted_share))
        n_plain = min(len(plain), k - n_inverted)
        n_inverted = min(len(inverted), k - n_plain)  # too few plain templates: fill up with inverted ones
        return rng.sample(plain, n_plain) + rng.sample(inverted, n_inverted)

    def expand(self, source: FlanSource) -> list[Record]:
        templates, records = source.templates, []
        task = templates.name
        for row_id, row in source.rows:
            for template in self.choose(templates.spec.templates, task, row_id):
                text = templates.render(template, row)
                labelled = templates.classification and not template.inverted
                records.append(Record(
                    **text, kind="classification" if labelled else "generation",
                    label=text["output"] if labelled else None,
                    lineage=Lineage(generator=NAME, operation=f"{task}/{template.name}", task_id=f"flan:{task}",
                                    seed_ids=[row_id], prompts={f"flan/{task}": templates.sha})))
        return records

    def run(self, source: FlanSource) -> StepResult:
        records = self.expand(source)
        accepted, rejected, _ = self.stage.run(records)
        used = Counter(r.lineage.operation.split("/", 1)[1] for r in records)
        inverted = {t.name for t in source.templates.spec.templates if t.inverted}
        self.stats.append({"task": source.templates.name, "rows": len(source.rows), "records": len(records),
                           "accepted": len(accepted), "inverted": sum(used[n] for n in inverted),
                           "templates": {t.name: used[t.name] for t in source.templates.spec.templates},
                           "templates_used": sum(1 for t in source.templates.spec.templates if used[t.name])})
        self.rows_done += len(source.rows)
        return StepResult(accepted, rejected, units=len(source.rows))
