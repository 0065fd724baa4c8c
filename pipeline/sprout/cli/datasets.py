"""Commands that shape finished data for training: `mix` (datasets by share into training stages) and `export`
(other trainers' formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def mix(
    config: Annotated[Path, typer.Option("--config", "-c", help="Mix config (YAML).")] = Path("configs/mix.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE (dotted key).")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Replace a mix in out_dir made by another config.")] = False,
) -> None:
    """Mix datasets by share into one file per training stage (kept rows against forgetting, pretraining text)."""
    from sprout.datasets.mix_config import load_mix_config
    from sprout.datasets.mixing import print_mix_summary, run_mix

    cfg, where = load_mix_config(config, set_)
    manifest = run_mix(cfg, where, force=force)
    print_mix_summary(manifest, cfg.out_dir, Console())


def export_(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="sprout records, Alpaca rows or `messages` rows "
                                               "(.jsonl or .json array).")],
    format_: Annotated[str, typer.Option("--format", "-f", help="alpaca (JSON array), messages (JSONL), sharegpt "
                                         "(JSON array) or hf (a `datasets` folder with train/validation).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file (or, for hf, the folder) to write.")],
    system_prompt: Annotated[str | None, typer.Option(help="A system turn first in every conversation that has "
                                                      "none (messages, sharegpt, hf).")] = None,
    validation_share: Annotated[float | None, typer.Option(help="hf: share of rows held out for validation "
                                                           "(default 0.1).")] = None,
    seed: Annotated[int | None, typer.Option(help="hf: seed of the train/validation split (default 42).")] = None,
    ids: Annotated[bool, typer.Option("--id/--no-id", help="messages, sharegpt: keep each row's `id` (the record's "
                                      "content hash).")] = True,
    force: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Export a dataset for other trainers: Alpaca JSON, OpenAI-style `messages` JSONL, ShareGPT, or a Hugging Face
    `datasets` folder with a seeded train/validation split."""
    from sprout.datasets.export import describe, export

    summary = export(input_path, format_, out, system_prompt=system_prompt, validation_share=validation_share,
                     seed=seed, ids=ids, force=force)
    print(describe(summary))


def register(app: typer.Typer) -> None:
    app.command()(mix)
    app.command("export")(export_)
