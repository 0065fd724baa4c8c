"""LoRA SFT with TRL's SFTTrainer and PEFT, used as they are: sprout only prepares the data and the settings.

Reads top to bottom: settings -> data (conversations, tokens, assistant mask, truncation report) -> model -> SFTConfig
+ LoraConfig -> train -> adapter, metrics, loss curve and summary in the run directory.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sprout.config.loader import dump_resolved
from sprout.core.errors import UserError
from sprout.datasets.chat_rows import split
from sprout.io.jsonl import atomic_directory, atomic_write
from sprout_trainer.config import TrainConfig
from sprout_trainer.data import Tokenized, choose_template, read_conversations, tokenize

if TYPE_CHECKING:  # metrics imports transformers (and torch): loaded once the data has been read
    from sprout_trainer.metrics import MetricsLog

# What the saved adapter records as its base model: a portable name, never this machine's path.
PORTABLE_IDS = {"embedded": "HuggingFaceTB/SmolLM2-135M-Instruct"}
ADAPTER_INFO = "sprout_adapter.json"


def quiet_libraries() -> None:
    """Per-map and weight-loading progress bars for a few hundred rows are noise, and transformers' own Trainer
    still calls a name it deprecated (a warning for library authors, not for users)."""
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils import logging as hf_logging

    disable_progress_bar()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def peak_rss_mb() -> float:
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kilobytes / (1024 if sys.platform != "darwin" else 1024 * 1024), 1)


def continued_adapter(model, config: TrainConfig, log=print):
    """The base model with `config.init_adapter` loaded trainable. The adapter must have been trained on the same
    base: LoRA deltas only mean something on the weights they were learned against."""
    from peft import PeftModel

    adapter = Path(config.init_adapter)
    info = adapter / ADAPTER_INFO
    if not info.is_file():
        raise UserError(f"init_adapter {adapter}: not a sprout adapter folder (no {ADAPTER_INFO}). Fix: name the "
                        "`adapter` folder of a `sprout train` run, e.g. out/train/stage-1-tasks/adapter.")
    trained_on = json.loads(info.read_text(encoding="utf-8")).get("model")
    if trained_on != config.model:
        raise UserError(f"init_adapter {adapter} was trained on model {trained_on!r}, this run trains "
                        f"{config.model!r}. Fix: set `model` to the adapter's base, or drop init_adapter.")
    continued = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    shape = continued.peft_config["default"]
    # The saved adapter names a portable base (a hub id); point PEFT at the local folder again, or saving would
    # look the base up on the hub. save_adapter writes the portable name back.
    shape.base_model_name_or_path = model.name_or_path
    log(f"continuing adapter {adapter} (r {shape.r}, alpha {shape.lora_alpha}; the config's `lora` is not used)")
    return continued


def training_arguments(config: TrainConfig, device: str, checkpoints: Path, has_eval: bool):
    from trl import SFTConfig

    bf16 = config.precision == "bf16" or (config.precision == "auto" and device == "cuda")
    checkpointing = config.activation_checkpointing if config.activation_checkpointing is not None else device == "cuda"
    # TRL's default optimizer (fused AdamW) unless QLoRA wants the paged 8-bit one or the config names one.
    optimizer = {"optim": config.optimizer or "paged_adamw_8bit"} if config.optimizer or config.qlora else {}
    evaluate = ("steps" if config.eval_steps else "epoch") if has_eval else "no"
    batch, accumulation = config.batch_plan(device)
    return SFTConfig(
        output_dir=str(checkpoints), seed=config.seed,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup, num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        gradient_accumulation_steps=accumulation, max_grad_norm=config.max_grad_norm,
        neftune_noise_alpha=config.neftune_alpha, label_smoothing_factor=config.label_smoothing,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        activation_checkpointing=checkpointing, bf16=bf16, use_cpu=device == "cpu", **optimizer,
        max_length=config.max_length, packing=config.packing, packing_strategy="bfd",
        logging_steps=config.logging_steps, eval_strategy=evaluate, eval_steps=config.eval_steps,
        save_strategy="no", report_to=[], dataloader_num_workers=0, disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        prediction_loss_only=True)  # evaluation needs the loss only; keeping every logit costs GBs on a 49k vocab


def load_model(model_dir: Path, config: TrainConfig, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.bfloat16 if device == "cuda" and config.precision != "fp32" else torch.float32}
    if config.qlora:
        from transformers import BitsAndBytesConfig

        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise UserError("qlora: true needs bitsandbytes. Fix: pip install 'sprout[gpu]' on a CUDA "
                            "machine.") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16,
                                                           bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    return model if config.qlora else model.to(device)


@dataclass
class Prepared:
    """Everything a run needs, built and checked before any step: the trainer, its data and where it writes."""

    trainer: object
    tokenizer: object
    template: str
    train: Tokenized
    val: Tokenized
    metrics: MetricsLog
    device: str
    out: Path


def prepare(config: TrainConfig, checkpoints: Path, log=print) -> Prepared:
    # The data first: a missing or malformed file is refused in a second, before torch, TRL and PEFT load (~5 s).
    conversations = read_conversations(config.data, config.system_prompt)
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, PrinterCallback
    from trl import SFTTrainer

    from sprout.backends.model_store import resolve_model

    quiet_libraries()
    device = config.resolved_device()
    if device == "cpu" and (config.precision == "bf16" or config.qlora):
        raise UserError("no CUDA device here: CPU training is fp32 only (bf16 kills many CPUs with 'illegal "
                        "instruction'; QLoRA needs CUDA). Fix: precision: auto, qlora: false.")
    if config.threads:
        torch.set_num_threads(config.threads)
    model_dir = resolve_model(config.model, log=log)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = choose_template(config.template, tokenizer)
    train_rows, val_rows = split(conversations, config.validation_share, config.seed)
    last_only = config.train_on == "last_assistant"
    train = tokenize(train_rows, tokenizer, template, config.max_length, last_only)
    val = tokenize(val_rows, tokenizer, template, config.max_length, last_only)
    if train.kept_share < config.min_trainable_share:
        raise UserError(
            f"only {train.kept_share:.0%} of the training examples keep a trainable answer token within "
            f"max_length={config.max_length} (whole {train.whole}, cut {train.cut}, dropped {train.dropped}; "
            f"min_trainable_share={config.min_trainable_share}). Fix: raise max_length or shorten the prompts.",
            train.examples)
    log(f"data: {len(train.rows)} train / {len(val.rows)} validation examples; truncation: {train.summary()}")
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "config.yaml", dump_resolved(config))
    torch.manual_seed(config.seed)
    model = load_model(model_dir, config, device)
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=config.lora.target_modules, task_type="CAUSAL_LM")
    if config.init_adapter is not None:  # go on training an earlier stage's adapter: TRL takes the PeftModel as is
        model, lora = continued_adapter(model, config, log), None
    from sprout_trainer.metrics import MetricsLog

    metrics = MetricsLog(out / "metrics.jsonl")
    args = training_arguments(config, device, checkpoints, has_eval=bool(val.rows))
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train.rows),
                         eval_dataset=Dataset.from_list(val.rows) if val.rows else None,
                         processing_class=tokenizer, peft_config=lora, callbacks=[metrics])
    trainer.remove_callback(PrinterCallback)  # metrics.jsonl and our own log line say it once, readably
    metrics.log = log
    return Prepared(trainer, tokenizer, template, train, val, metrics, device, out)


def run_train(config: TrainConfig, log=print) -> dict:
    # Trainer scratch space outside out_dir: a run refused before training leaves no folder behind.
    with tempfile.TemporaryDirectory(prefix="sprout-checkpoints-") as checkpoints:
        run = prepare(config, Path(checkpoints), log)
        from sprout_trainer.metrics import plot_loss, real_token_share
        trainer, train, val, metrics, out = run.trainer, run.train, run.val, run.metrics, run.out
        started = time.monotonic()
        result = trainer.train()
        seconds = time.monotonic() - started
        # The epoch-end evaluation already ran after the last step: reuse it rather than evaluate twice.
        evaluated = [row for row in metrics.rows() if "eval_loss" in row and row["step"] == result.global_step]
        final_eval = (evaluated[-1] if evaluated else trainer.evaluate()) if val.rows else {}
    tokenizer, template, device = run.tokenizer, run.template, run.device
    if not trainer.is_world_process_zero():  # under `accelerate launch`, the main process writes the outputs
        return {"out_dir": str(out), "rank": trainer.args.process_index}
    save_adapter(trainer.model, tokenizer, template, config, out / "adapter")
    plot_loss(metrics.rows(), out / "loss.png")
    tokens = metrics.trained_tokens or sum(len(r["input_ids"]) for r in train.rows) * config.epochs
    summary = {
        "out_dir": str(out), "device": device, "model": config.model, "examples": len(train.rows),
        "batch": dict(zip(("micro_batch", "accumulation"), config.batch_plan(device), strict=True)),
        "validation_examples": len(val.rows), "truncation": train.summary(), "steps": result.global_step,
        "train_loss": round(result.training_loss, 4), "eval_loss": round(final_eval.get("eval_loss", float("nan")), 4)
        if final_eval else None, "seconds": round(seconds, 1), "tokens_per_second": round(tokens / seconds, 1),
        "peak_rss_mb": peak_rss_mb(), "real_token_share": {
            name: real_token_share(train.rows, config.batch_plan(device)[0], config.max_length,
                                   packing=name == "packed", pad_token_id=tokenizer.pad_token_id)
            for name in ("unpacked", "packed")},
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def save_adapter(model, tokenizer, template: str, config: TrainConfig, target: Path) -> None:
    """The LoRA weights, tokenizer and training template, written to a staging folder and renamed into place. The
    adapter records a portable base-model name, never this machine's path, so it reloads anywhere."""
    with atomic_directory(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "training_template.jinja").write_text(template, encoding="utf-8")
        adapter_config = json.loads((staging / "adapter_config.json").read_text())
        adapter_config["base_model_name_or_path"] = PORTABLE_IDS.get(config.model, Path(config.model).name)
        (staging / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
        (staging / ADAPTER_INFO).write_text(json.dumps({"model": config.model}) + "\n")
