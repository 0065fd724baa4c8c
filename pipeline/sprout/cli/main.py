"""The `sprout` command. User errors print one message and exit 2; nothing here prints a traceback for them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from sprout.cli.display import RunDisplay
from sprout.core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Grow a seed set into an instruction-tuning dataset, filter it, and fine-tune on it.")
seeds_app = typer.Typer(no_args_is_help=True, help="Check seed files.")
model_app = typer.Typer(no_args_is_help=True, help="Manage the embedded model.")
templates_app = typer.Typer(no_args_is_help=True, help="FLAN-style template sets under prompts/flan/.")
app.add_typer(seeds_app, name="seeds")
app.add_typer(model_app, name="model")
app.add_typer(templates_app, name="templates")
console = Console(stderr=True)


def _fail(error: UserError) -> None:
    # escape: messages quote config and install commands with brackets (`sprout[vllm]`) that rich reads as markup
    console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)
    for detail in error.details:
        console.print(f"  {detail}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
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

    try:
        cfg = load_config(config, set_)
        if dry_run:
            from sprout.runs.dry_run import estimate, save_pace

            result = estimate(cfg, sample_share, log=console.print)
            save_pace(cfg, result)
            print_estimate(result, sample_share, Console())
            return
        display = RunDisplay(console, load_pace(cfg))
        summary = run_data(cfg, force=force, progress=display, log=display.log)
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@app.command()
def dedup(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help=".txt (one per line), .jsonl or .json array")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the kept rows go (same format as INPUT).")],
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drop if ROUGE-L F > this.")] = 0.7,
    on: Annotated[str | None, typer.Option(help="Rows (Alpaca, messages, sprout records): what to compare. all "
                                           "(default): a near-duplicate is alike in instruction, input AND output; "
                                           "instruction+input; instruction (Self-Instruct's task-level rule).")]
    = None,
    field: Annotated[str | None, typer.Option(help="Compare one JSON field instead (any JSON objects).")] = None,
    tokenizer: Annotated[str, typer.Option(help="rouge (as rouge-score) or unicode (for non-Latin text).")] = "rouge",
) -> None:
    """Greedy ROUGE-L near-duplicate removal in file order, with exactly rouge-score's decisions (per field)."""
    from sprout.filters.row_index import FIELDS
    from sprout.runs.filter import run_dedup

    try:
        if tokenizer not in ("rouge", "unicode"):
            raise UserError(f"--tokenizer {tokenizer!r}: use rouge or unicode.")
        if on is not None and on not in FIELDS:
            raise UserError(f"--on {on!r}: use {', '.join(FIELDS)}.")
        result = run_dedup(input_path, out, threshold, field, tokenizer, on)
    except UserError as error:
        _fail(error)
    compared = result["compared"]
    compared = "+".join(compared) + (" (each field)" if len(compared) > 1 else "") if isinstance(compared, tuple) \
        else compared
    print(f"read {result['read']}, kept {result['kept']}, dropped {result['dropped']} "
          f"(ROUGE-L > {threshold} on {compared}) in {result['seconds']:.2f} s -> {result['output']}; dropped: "
          f"{result['rejects']}")
    if 2 * result["dropped"] > result["read"]:  # a user's dataset is precious: most of it going is said loudly
        fix = "--on all (each field must match) or " if isinstance(result["compared"], tuple) and len(
            result["compared"]) < 3 else ""
        console.print(f"[bold yellow]warning:[/] more than half of the rows were dropped as near-duplicates "
                      f"({result['dropped']} of {result['read']}); if that is not what you want, try {fix}a higher "
                      "--threshold, and look at the matches in the rejects file.", highlight=False)


@app.command()
def decontaminate(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Records, Alpaca rows (.jsonl / .json) or .txt")],
    against: Annotated[list[Path], typer.Option("--against", "-a", help="An eval file (.jsonl, .json array, .txt "
                                                "one item a line); repeat for more.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Tokens per n-gram.")] = 13,
    min_tokens: Annotated[int, typer.Option(min=1, help="Eval texts shorter than n but this long must appear whole; "
                                            "shorter ones are not indexed.")] = 8,
    field: Annotated[list[str] | None, typer.Option("--field", help="Row field to check; repeat for more "
                                                    "(default: instruction and input).")] = None,
    eval_field: Annotated[str | None, typer.Option(help="Index only this field of each eval item (default: every "
                                                   "string in it, nested ones too).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Kept rows, in INPUT's format (default: "
                                             "INPUT.decontaminated.EXT beside INPUT).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Drop rows whose instruction or input shares an n-gram (13 tokens by default; case, punctuation and spacing
    ignored) with an item of the eval files; dropped rows with the matching n-gram and eval item go to
    OUT.rejected.jsonl, counts to OUT.report.json and .md."""
    from sprout.runs.decontaminate import run_decontaminate, side_paths

    try:
        report = run_decontaminate(input_path, against, out, n, min_tokens, tuple(field or ()), eval_field, force)
    except UserError as error:
        _fail(error)
    per_file = ", ".join(f"{Path(f['file']).name} {f['dropped']}" for f in report["eval_files"])
    print(f"read {report['read']}, kept {report['kept']}, dropped {report['dropped']} ({n}-gram overlap; by eval "
          f"file: {per_file}) in {sum(report['seconds'].values()):.2f} s -> {report['output']}; dropped: "
          f"{report['rejects']}; report: {side_paths(Path(report['output']))['report_md']}")


@app.command("filter")
def filter_(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Records or Alpaca rows (.jsonl / .json).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: the config's out_dir).")]
    = None,
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/filter.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
) -> None:
    """Run the whole filter stage over an existing dataset (Alpaca rows, `messages` rows or sprout records): kept
    rows (as records, and as you wrote them in kept.jsonl/.json), rejects with reasons, and the report."""
    from sprout.config.loader import load_config
    from sprout.reports.summary import print_summary
    from sprout.runs.filter import FilterRunConfig, run_filter

    options = {f"out_dir={out}": "--out"} if out else None
    try:
        summary = run_filter(input_path, load_config(config, set_, model=FilterRunConfig, options=options),
                             log=lambda message: console.print(message))
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@app.command()
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
    try:
        cfg = load_config(config, set_, model=EvolveRunConfig, options=options)
        display = RunDisplay(console)
        summary = run_evolve(cfg, force=force, progress=display, log=display.log)
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@app.command()
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
    try:
        cfg = load_config(config, set_, model=SynthRunConfig, options=options)
        display = RunDisplay(console)
        summary = run_synth(cfg, force=force, progress=display, log=display.log)
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@templates_app.command("check")
def templates_check(
    tasks: Annotated[list[str] | None, typer.Argument(help="Task names (default: every file in prompts/flan/).")]
    = None,
) -> None:
    """Load each template set with its data and check every template against it (placeholders, options block)."""
    from sprout.generators.flan.config import FlanTaskConfig
    from sprout.generators.flan.expansion import load_source
    from sprout.generators.flan.templates import PROMPTS_DIR

    names = tasks or sorted(p.stem for p in (PROMPTS_DIR / "flan").glob("*.yaml"))
    try:
        for name in names:
            source = load_source(FlanTaskConfig(task=name), name)
            spec = source.templates.spec
            inverted = sum(t.inverted for t in spec.templates)
            print(f"ok: {name}: {len(spec.templates)} templates ({inverted} inverted), {len(source.rows)} rows, "
                  f"{spec.kind}")
    except UserError as error:
        _fail(error)


@templates_app.command("expand")
def templates_expand(
    tasks: Annotated[list[str], typer.Argument(help="Task names under prompts/flan/ (e.g. sentiment nli).")],
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
    try:
        display = RunDisplay(console)
        summary = run_flan(load_config(None, model=FlanRunConfig, options=options), force=force, progress=display,
                           log=display.log)
    except UserError as error:
        _fail(error)
    print_summary(summary, Console())


@templates_app.command("grow")
def templates_grow(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name under prompts/flan/.")],
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

    try:
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
    except UserError as error:
        _fail(error)
    asked = len(templates.spec.templates) * cfg.variants
    print(f"{len(result.kept)} of {asked} new wordings kept -> {written if result.kept else '(none kept)'}; "
          f"rejected by rule: {result.counts() or 'none'} -> {out.with_suffix('.rejected.jsonl')}")


@app.command("export")
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

    try:
        summary = export(input_path, format_, out, system_prompt=system_prompt, validation_share=validation_share,
                         seed=seed, ids=ids, force=force)
    except UserError as error:
        _fail(error)
    print(describe(summary))


@app.command()
def mix(
    config: Annotated[Path, typer.Option("--config", "-c", help="Mix config (YAML).")] = Path("configs/mix.yaml"),
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE (dotted key).")] = [],  # noqa: B006
    force: Annotated[bool, typer.Option(help="Replace a mix in out_dir made by another config.")] = False,
) -> None:
    """Mix datasets by share into one file per training stage (kept rows against forgetting, pretraining text)."""
    from sprout.datasets.mix_config import load_mix_config
    from sprout.datasets.mixing import print_mix_summary, run_mix

    try:
        cfg, where = load_mix_config(config, set_)
        manifest = run_mix(cfg, where, force=force)
    except UserError as error:
        _fail(error)
    print_mix_summary(manifest, cfg.out_dir, Console())


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="A record id (a unique prefix is enough).")],
    run: Annotated[Path, typer.Option(help="The run directory to look in.")] = Path("out/data"),
) -> None:
    """Print a record's family tree: its ancestors and everything evolved from it, with operation and round."""
    from sprout.reports.lineage_tree import family_tree

    try:
        lines = family_tree(run, record_id)
    except UserError as error:
        _fail(error)
    print("\n".join(lines))


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (holds report.json).")]) -> None:
    """Regenerate a run's report: report.json (enriched), report.md and a self-contained report.html."""
    from sprout.reports.report import write_reports

    try:
        if not (run_dir / "report.json").is_file():
            raise UserError(f"{run_dir}: no report.json here; pass a run directory such as out/data.")
        paths = write_reports(run_dir)
    except UserError as error:
        _fail(error)
    for path in paths:
        print(path)


@seeds_app.command("check")
def seeds_check(paths: Annotated[list[Path], typer.Argument(help="Seed files (JSONL or JSON array).")]) -> None:
    """Validate seed files: every bad line is listed as file:line; exit 2 if any."""
    from sprout.core.seeds import load_seeds, summarize

    try:
        tasks = load_seeds(paths)
    except UserError as error:
        _fail(error)
    counts = summarize(tasks)
    print(f"ok: {counts['tasks']} tasks ({counts['classification']} classification, {counts['generation']} "
          f"generation), {counts['instances']} instances, {counts['with_input']} tasks with input")


@model_app.command("prepare")
def model_prepare() -> None:
    """Convert the embedded GGUF model to a safetensors folder once (later loads take ~0.1 s)."""
    from sprout.backends.model_store import prepare_embedded

    try:
        path = prepare_embedded(log=lambda message: console.print(message))
    except UserError as error:
        _fail(error)
    print(path)


# The trainer's commands live in cli_train.py; importing it registers them on `app` (it imports `app` from here,
# so it comes last, once everything it uses is defined).
from sprout.cli import train_commands  # noqa: E402, F401
