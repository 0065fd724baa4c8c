"""The CUDA paths of the trainer: bf16 with activation checkpointing, and QLoRA (4-bit NF4, paged AdamW 8-bit).
They need a CUDA GPU (and bitsandbytes for QLoRA); without one they are skipped, with the reason printed."""

import json

import pytest
import torch

from sprout.trainer.config import TrainConfig
from sprout.trainer.train import run_train
from tests.conftest import REPO

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]
DATA = REPO / "seeds" / "tasks" / "political_promises.yaml"


def test_bf16_lora_with_activation_checkpointing(tmp_path):
    summary = run_train(TrainConfig(data=DATA, out_dir=tmp_path, max_steps=4, batch_size=8, device="cuda"),
                        log=lambda *_: None)
    config = (tmp_path / "config.yaml").read_text()
    assert summary["device"] == "cuda" and summary["steps"] == 4 and summary["train_loss"] > 0
    assert "precision: auto" in config and json.loads((tmp_path / "summary.json").read_text())["peak_rss_mb"] > 0


def test_qlora_trains_a_4bit_base(tmp_path):
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes: pip install 'sprout[gpu]'")
    summary = run_train(TrainConfig(data=DATA, out_dir=tmp_path, max_steps=4, batch_size=8, device="cuda",
                                    qlora=True), log=lambda *_: None)
    assert summary["steps"] == 4 and summary["train_loss"] > 0
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
