"""Commands that grow data with a model: `data` (every configured generator), `evolve` (Evol-Instruct over
your rows), `synth` (pairs for one task spec) and the FLAN-style `templates` group (check, expand, grow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sprout.cli.display import RunDisplay
from sprout.cli.shared import console
from sprout.core.errors import UserError


def data(
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config (YAML).")] = Path("configs/data.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE (dotted key).")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Discard an existing run in out_dir made by another config.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Run a small sample and print the estimated calls, tokens, time and cost of the whole "
        "run; out_dir is not touched (the sample's answers are cached for the real run).")] = False,
    sample_share: Annotated[float, typer.Option(min=0.01, max=1.0, help="--dry-run: share of the run to sample.")]
    = 0.1,
) -> None:
    """Grow the seed set with the configured generators, filter it, and write examples, rejects and a report."""
    from sprout.config.loader import load_config
    from sprout.reports.summary import print_estimate, print_summary
    from sprout.runs.data import run_data
    from sprout.runs.dry_run import load_pace

    cfg = load_config(config, set_)
    if dry_run:
        from sprout.runs.dry_run import estimate, save_pace

        result = estimate(cfg, sample_share, log=console.print)
        save_pace(cfg, result)  # the real run's progress display starts its ETAs from this pace
        print_estimate(result, sample_share, Console())
        return
    display = RunDisplay(console, load_pace(cfg))
    summary = run_data(cfg, force=force, progress=display, log=display.log)
    print_summary(summary, Console())


def evolve(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="Alpaca rows or sprout records to evolve.")],
    rounds: Annotated[int | None, typer.Option(min=1, help="Evolution rounds (default: the config's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: the config's out_dir).")]
    = None,
    keep_original: Annotated[bool, typer.Option("--keep-original", help="Write the input rows to examples.jsonl "
                                                "too, beside their evolutions (as WizardLM's data mixes them).")]
    = False,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/evolve.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Discard an existing run in out_dir made by another config.")] = False,
) -> None:
    """Evol-Instruct over an existing dataset: harder and rarer instructions, with the paper's elimination."""
    from sprout.config.loader import load_config
    from sprout.reports.summary import print_summary
    from sprout.runs.evolve import EvolveRunConfig, run_evolve

    options = {f"input={input_path}": "--input", **({f"evol_instruct.rounds={rounds}": "--rounds"} if rounds else {}),
               **({f"out_dir={out}": "--out"} if out else {}),
               **({"evol_instruct.keep_original=true": "--keep-original"} if keep_original else {})}
    cfg = load_config(config, set_, model=EvolveRunConfig, options=options)
    display = RunDisplay(console)
    summary = run_evolve(cfg, force=force, progress=display, log=display.log)
    print_summary(summary, Console())


def synth(
    task: Annotated[Path | None, typer.Option("--task", "-t", help="Task spec (YAML), e.g. "
                                             "seeds/tasks/political_promises.yaml.")] = None,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Pairs to make (default: the config's).")] = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/synth.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Discard an existing run in out_dir made by another config.")] = False,
) -> None:
    """Synthesise (input, output) pairs for one task: input-first and output-first, with the label mix enforced."""
    from sprout.config.loader import load_config
    from sprout.reports.summary import print_summary
    from sprout.runs.synth import SynthRunConfig, run_synth

    options = {**({f"synth.task={task}": "--task"} if task else {}), **({f"synth.n={n}": "--n"} if n else {})}
    cfg = load_config(config, set_, model=SynthRunConfig, options=options)
    display = RunDisplay(console)
    summary = run_synth(cfg, force=force, progress=display, log=display.log)
    print_summary(summary, Console())


def templates_check(
    tasks: Annotated[list[str] | None, typer.Argument(help="Task names or template files (.yaml); "
                                                                    "default: every file in prompts/flan/.")]
    = None,
) -> None:
    """Load each template set with its data and check every template against it (placeholders, options block)."""
    from sprout.generators.flan.config import FlanTaskConfig
    from sprout.generators.flan.expansion import load_source
    from sprout.generators.flan.templates import PROMPTS_DIR

    names = tasks or sorted(p.stem for p in (PROMPTS_DIR / "flan").glob("*.yaml"))
    for name in names:
        source = load_source(FlanTaskConfig(task=name), name)
        spec = source.templates.spec
        inverted = sum(t.inverted for t in spec.templates)
        print(f"ok: {name}: {len(spec.templates)} templates ({inverted} inverted), {len(source.rows)} rows, "
              f"{spec.kind}")


def templates_expand(
    tasks: Annotated[list[str], typer.Argument(help="Task names under prompts/flan/ (e.g. sentiment "
                                                          "nli), or template files of yours (.yaml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("out/flan"),
    per_row: Annotated[int | None, typer.Option(min=1, help="Templates per row (default 3; 0 = all).")] = None,
    all_templates: Annotated[bool, typer.Option("--all", help="Every template for every row.")] = False,
    inverted_share: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.3,
    force: Annotated[bool, typer.Option(help="Discard an existing run in --out made by another config.")] = False,
) -> None:
    """FLAN expansion alone: every sampled (row, template) pair becomes a record, through the filter stage."""
    from sprout.config.loader import load_config
    from sprout.reports.summary import print_summary
    from sprout.runs.synth import FlanRunConfig, run_flan

    per_row_value = "null" if all_templates else per_row or 3
    options = {f"out_dir={out}": "--out", f"flan.tasks={json.dumps(tasks)}": "TASKS",
               f"flan.templates_per_row={per_row_value}": "--per-row", f"flan.inverted_share={inverted_share}":
               "--inverted-share"}
    display = RunDisplay(console)
    summary = run_flan(load_config(None, model=FlanRunConfig, options=options), force=force, progress=display,
                       log=display.log)
    print_summary(summary, Console())


def templates_grow(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name under prompts/flan/, or a template "
                                                         "file of yours (.yaml).")],
    variants: Annotated[int | None, typer.Option(min=1, help="New wordings per template.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Default: prompts/flan/<task>.grown.yaml")] = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/templates.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out file.")] = False,
) -> None:
    """Ask the model for new wordings of a template set; keep those with the same placeholders that pass ROUGE-L
    against the existing ones, and write them to a new file for review (never used silently)."""
    from sprout.backends.registry import Backends
    from sprout.config.loader import load_config
    from sprout.generators.flan.template_grow import TemplatesGrowConfig, default_out, grow_templates, write_grown
    from sprout.generators.flan.templates import load_template_set

    cfg = load_config(config, set_, model=TemplatesGrowConfig,
                      options={f"variants={variants}": "--variants"} if variants else None)
    templates = load_template_set(task)
    out = out or default_out(task)
    if out.exists() and not force:
        raise UserError(f"{out} exists (maybe with your review edits). Fix: pass --out elsewhere, or --force.")
    backends = Backends(cfg.backend, cfg.cache, console.print)
    try:
        result = grow_templates(templates, cfg, backends.get())
    finally:
        backends.close()
    written = write_grown(templates, result, out, force=True)
    asked = len(templates.spec.templates) * cfg.variants
    print(f"{len(result.kept)} of {asked} new wordings kept -> {written if result.kept else '(none kept)'}; "
          f"rejected by rule: {result.counts() or 'none'} -> {out.with_suffix('.rejected.jsonl')}")


def register(app: typer.Typer) -> None:
    templates = typer.Typer(no_args_is_help=True, help="FLAN-style template sets under prompts/flan/.")
    app.command()(data)
    app.command()(evolve)
    app.command()(synth)
    templates.command("check")(templates_check)
    templates.command("expand")(templates_expand)
    templates.command("grow")(templates_grow)
    app.add_typer(templates, name="templates")
