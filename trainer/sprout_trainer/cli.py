"""`sprout train`, `eval`, `merge`, `chat`: the trainer's commands.

The pipeline's app finds them through the `sprout.commands` entry point (pyproject.toml) and calls `register`;
the pipeline never imports the trainer. Heavy imports (torch, transformers) wait inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sprout.cli.shared import console
from sprout.core.errors import UserError


def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config.")] = Path("configs/train.yaml"),
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Training JSONL (default: the config's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default: the config's).")] = None,
    stages: Annotated[Path | None, typer.Option("--stages", help="A `sprout mix` out_dir: train its stage files in "
                                                "order, each going on from the previous stage's adapter.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: KEY=VALUE.")] = [],  # noqa: B006
) -> None:
    """LoRA-tune a model on sprout records, Alpaca, `messages` or `text` rows (TRL SFTTrainer + PEFT)."""
    from sprout.config.loader import load_config
    from sprout_trainer.config import TrainConfig


    options = {**({f"data={data}": "--data"} if data else {}), **({f"out_dir={out}": "--out"} if out else {})}
    if stages and data:
        raise UserError("--stages and --data both name the training data. Fix: pass one of them.")
    cfg = load_config(config, set_, model=TrainConfig, options=options)
    if stages:
        from sprout_trainer.stages import run_stages

        summary = run_stages(cfg, stages, log=console.print)
    else:
        from sprout_trainer.train import run_train

        summary = run_train(cfg, log=console.print)
    if "rank" in summary:  # another process of `accelerate launch`: the main one reports
        return
    for stage in summary.get("stages", [summary]):
        trunc = stage["truncation"]
        print(("" if "stage" not in stage else f"stage {stage['stage']}: ")
              + f"trained {stage['examples']} examples ({stage['validation_examples']} held out) for "
              f"{stage['steps']} steps in {stage['seconds']} s on {stage['device']}: train loss "
              f"{stage['train_loss']}, validation loss {stage['eval_loss']}; {stage['tokens_per_second']} tokens/s, "
              f"peak RSS {stage['peak_rss_mb']} MB; truncation: {trunc['whole']} whole, {trunc['cut']} cut, "
              f"{trunc['dropped']} dropped; real tokens per batch {stage['real_token_share']['unpacked']:.1%} "
              f"unpacked, {stage['real_token_share']['packed']:.1%} packed")
    if "stages" in summary:
        print(f"outputs: {summary['out_dir']}/<stage>/ (adapter · metrics.jsonl · loss.png · summary.json) · "
              f"stages.json; final adapter: {summary['adapter']}")
    else:
        print(f"outputs: {summary['out_dir']}/adapter · metrics.jsonl · loss.png · summary.json · config.yaml")


def eval_(
    adapter: Annotated[Path, typer.Option("--adapter", "-a", help="An adapter folder from `sprout train`.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Held-out rows (records, Alpaca or messages).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Default: next to the adapter.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N rows only.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Generation budget per answer.")] = 64,
    base: Annotated[str | None, typer.Option(help="Base model (default: the one the adapter was trained on).")]
    = None,
    device: Annotated[str, typer.Option(help="auto (CUDA in bf16 when there is one, else CPU in fp32), cpu, cuda.")]
    = "auto",
) -> None:
    """Base vs tuned on a held-out set: accuracy and per-label P/R (labels) or ROUGE-L, answer loss, side by side."""
    from sprout_trainer.evaluate import run_eval

    report = run_eval(adapter, data, out or Path(adapter).parent / "eval", limit, max_tokens, base,
                      log=console.print, device=device)
    metric = "accuracy" if report["task"] == "classification" else "rouge_l"
    print(f"{report['rows']} rows ({report['task']}): {metric} base {report['base'][metric]} -> tuned "
          f"{report['tuned'][metric]}; answer loss base {report['base']['answer_loss']} -> tuned "
          f"{report['tuned']['answer_loss']}")
    print(f"outputs: {out or Path(adapter).parent / 'eval'}/eval.json · eval.md")


def merge(
    adapter: Annotated[Path, typer.Option("--adapter", "-a")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The standalone model folder to write.")],
    base: Annotated[str | None, typer.Option(help="Base model (default: the adapter's).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA in bf16 when there is one, else CPU in fp32), cpu, cuda.")]
    = "auto",
) -> None:
    """Fold the adapter into its base model: a standalone folder that plain transformers loads."""
    from sprout_trainer.evaluate import merge_adapter

    path = merge_adapter(adapter, out, base, log=console.print, device=device)
    print(path)


def chat(
    prompt: Annotated[str, typer.Argument(help="Your instruction.")],
    adapter: Annotated[Path, typer.Option("--adapter", "-a")] = Path("out/train/adapter"),
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    base: Annotated[str | None, typer.Option(help="Base model (default: the adapter's).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA in bf16 when there is one, else CPU in fp32), cpu, cuda.")]
    = "auto",
) -> None:
    """Try the tuned model on one instruction (greedy)."""
    from sprout_trainer.evaluate import chat as run_chat

    print(run_chat(adapter, prompt, max_tokens, base, log=console.print, device=device))


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command("eval")(eval_)
    app.command()(merge)
    app.command()(chat)
