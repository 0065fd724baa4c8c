"""What a training run leaves to read: a metrics log (JSONL, one row per log event), a loss curve, token shares."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback


class MetricsLog(TrainerCallback):
    """Appends every log event (loss, lr, grad norm, eval loss...) to metrics.jsonl as it happens."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.write_text("", encoding="utf-8")
        self.trained_tokens = 0
        self.log = None  # a callable for one progress line per log event

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:  # under `accelerate launch` one process writes the log
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), **(logs or {})}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.log and ("loss" in row or "eval_loss" in row):
            shown = {k: row[k] for k in ("loss", "eval_loss", "learning_rate", "grad_norm") if k in row}
            self.log(f"step {row['step']}/{state.max_steps} " + " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))

    def on_train_end(self, args, state, control, **kwargs):
        self.trained_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)

    def rows(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for points, label, style in ((train, "train loss", "-"), (evals, "validation loss", "o--")):
        if points:
            axes.plot(*zip(*points, strict=True), style, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    if train or evals:  # a legend of no lines is a matplotlib warning in every run too short to log a loss
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no loss logged: the run was shorter than logging_steps", ha="center",
                  transform=axes.transAxes)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def real_token_share(rows: list[dict], batch_size: int, max_length: int, packing: bool, pad_token_id: int = 0
                     ) -> float | None:
    """Share of real (non-pad) tokens in the batches TRL's own collator builds from `rows` (in order). Packed:
    TRL's `bfd` packer, then its padding-free collation (what SFTTrainer does with `packing_strategy="bfd"`)."""
    if not rows:
        return None
    from datasets import Dataset
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    items = [{"input_ids": r["input_ids"]} for r in rows]
    if packing:
        items = list(pack_dataset(Dataset.from_list(items), max_length, "bfd"))
    collate = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=packing)
    real = total = 0
    for start in range(0, len(items), batch_size):
        batch = collate(items[start:start + batch_size])
        total += batch["input_ids"].numel()
        real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    return round(real / total, 4)
