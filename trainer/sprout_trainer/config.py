"""`sprout train` settings: YAML validated by pydantic, every TRL/PEFT knob of the design guide, device-aware defaults.

The defaults follow the LoRA recipe in the design guide (AdamW, lr 3e-4, weight decay 0.01, cosine, warmup 3%,
max grad norm 2, <= 3 epochs), adapted to a 2-core CPU: fp32 (bf16 kills these CPUs with "illegal instruction"), no
activation checkpointing (it trades compute for memory, and a 135M model has memory to spare). On CUDA: bf16,
checkpointing on, and QLoRA (4-bit NF4) with a paged AdamW when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sprout.config.base import Strict
from sprout.config.paths import OutputFolder


class LoraSettings(Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


# Names users bring from older TRL/transformers scripts (or from the trainer arguments) -> the key here.
RENAMED = {"max_seq_length": "max_length", "evaluation_strategy": "eval_steps", "warmup_ratio": "warmup",
           "warmup_steps": "warmup", "gradient_checkpointing": "activation_checkpointing",
           "per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accumulation",
           "num_train_epochs": "epochs", "neftune_noise_alpha": "neftune_alpha", "lr_scheduler_type": "lr_scheduler",
           "label_smoothing_factor": "label_smoothing", "optim": "optimizer", "lora_r": "lora.r",
           "lora_alpha": "lora.alpha", "lora_dropout": "lora.dropout", "bf16": "precision: bf16"}


class TrainConfig(Strict):
    model: str = "embedded"  # `embedded` or a local transformers model folder
    data: Path = Path("out/data/examples.jsonl")
    out_dir: OutputFolder = Path("out/train")
    seed: int = 42
    # --- data
    system_prompt: str | None = None
    template: Literal["auto", "smollm2", "mistral", "chatml"] = Field(
        "auto", description="auto: the model's own template if it marks answers, else TRL's training version of it, "
        "else sprout's twin (SmolLM2, Mistral), each checked to render alike; ChatML for a model without one")
    train_on: Literal["all_assistant", "last_assistant"] = "all_assistant"
    validation_share: float = Field(0.1, ge=0, lt=1)
    max_length: int = Field(512, gt=8)
    min_trainable_share: float = Field(0.9, ge=0, le=1, description="stop if fewer examples keep an answer token")
    packing: bool = False  # TRL's `bfd` strategy only: packed examples never attend to each other
    # --- optimisation
    learning_rate: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    lr_scheduler: str = "cosine"
    warmup: float = Field(0.03, ge=0, description="< 1: a share of the steps; >= 1: a number of steps")
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    # Per device; default an effective batch of 8 that fits the device: 2 x 4 on the CPU (a quarter of the
    # activation memory of 8 x 1: without checkpointing, activations dominate peak memory, 135M on CPU: ~4.5 GB at
    # 4 x 243 tokens), 8 x 1 on CUDA. One of the two given: the other keeps the effective batch at 8.
    batch_size: int | None = Field(None, gt=0)
    grad_accumulation: int | None = Field(None, gt=0)
    max_grad_norm: float = Field(2.0, gt=0)
    neftune_alpha: float | None = Field(None, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    group_by_length: bool = False
    activation_checkpointing: bool | None = None  # None: on for CUDA, off for CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    qlora: bool = False  # 4-bit NF4 base weights (bitsandbytes, CUDA only; `pip install 'sprout[gpu]'`)
    optimizer: str | None = None  # None: TRL's default (fused AdamW), or paged_adamw_8bit with QLoRA
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, gt=0)
    lora: LoraSettings = LoraSettings()
    # Continue training this LoRA adapter (a `sprout train` run's `adapter` folder, e.g. the previous stage of a
    # mix) instead of a fresh one: its base must be `model`, and its LoRA shape (r, alpha, targets) is kept.
    init_adapter: Path | None = None
    logging_steps: int = Field(5, gt=0)
    eval_steps: int | None = Field(None, gt=0, description="None: evaluate once per epoch")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        old = sorted(k for k in data if k in RENAMED) if isinstance(data, dict) else []
        if old:
            raise ValueError("; ".join(f"`{k}` is the trainer-argument name: use `{RENAMED[k]}`" for k in old))
        return data

    @model_validator(mode="after")
    def _cpu_is_fp32(self) -> TrainConfig:
        if self.device == "cpu" and (self.precision == "bf16" or self.qlora):
            raise ValueError("device cpu trains in fp32 only: bf16 kills many CPUs ('illegal instruction') and "
                             "QLoRA needs CUDA. Fix: precision: fp32 (or auto) and qlora: false.")
        return self

    @model_validator(mode="after")
    def _init_adapter_without_qlora(self) -> TrainConfig:
        if self.init_adapter is not None and self.qlora:
            raise ValueError("init_adapter with qlora: continuing an adapter on 4-bit weights is not supported yet. "
                             "Fix: qlora: false, or train from a fresh adapter")
        return self

    def batch_plan(self, device: str) -> tuple[int, int]:
        """(micro-batch, gradient accumulation) on this device."""
        batch = self.batch_size or (8 if device.startswith("cuda") else 2)
        return batch, self.grad_accumulation or max(1, 8 // batch)

    def resolved_device(self) -> str:
        from sprout.backends.devices import resolve_device

        return resolve_device(self.device)
