"""The CUDA paths of the trainer: bf16 with activation checkpointing, and QLoRA (4-bit NF4, paged AdamW 8-bit).
They need a CUDA GPU (and bitsandbytes for QLoRA); without one they are skipped, with the reason printed.

They train a tiny random Llama (2 layers) with SmolLM2's tokenizer, like tests/test_trainer.py: the tokenizer comes
from the folder named by SPROUT_TEST_TOKENIZER when set (a GPU machine the 500 MB embedded model cannot travel to),
else from the embedded model. Each test prints one `gpu-run {...}` line with its key numbers (run pytest with -s)."""

import json
import math
import os

import pytest
import sprout_trainer.train as train_module
import torch
from sprout_trainer.config import TrainConfig
from sprout_trainer.train import run_train

from tests.conftest import REPO, save_tiny_llama

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]
DATA = REPO / "seeds" / "tasks" / "political_promises.yaml"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from sprout.backends.model_store import resolve_model

    folder = os.environ.get("SPROUT_TEST_TOKENIZER") or resolve_model("embedded", log=lambda *_: None)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer):
    """Wide enough that some LoRA matrices (2048 x 64) reach bitsandbytes' thresholds for 8-bit optimizer state
    (4096 elements) and paged state (1e5 elements); still only ~15M parameters, most of them the embedding."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tokenizer, hidden_size=256, intermediate_size=2048)


@pytest.fixture
def prepared(monkeypatch):
    """Runs the real `run_train` and keeps what its `prepare` built, to look at the trained model and optimizer."""
    kept = {}

    def keep(*args, **kwargs):
        kept["run"] = real(*args, **kwargs)
        return kept["run"]

    real = train_module.prepare
    monkeypatch.setattr(train_module, "prepare", keep)
    torch.cuda.reset_peak_memory_stats()
    return kept


def train_config(tmp_path, tiny_model, **overrides):
    return TrainConfig(**{"model": str(tiny_model), "data": DATA, "out_dir": tmp_path / "run", "max_steps": 4,
                          "batch_size": 8, "logging_steps": 1, "device": "cuda", **overrides})


def check_summary(summary, out):
    assert summary["device"] == "cuda" and summary["steps"] == 4
    assert math.isfinite(summary["train_loss"]) and summary["train_loss"] > 0
    assert summary["eval_loss"] is not None and math.isfinite(summary["eval_loss"])
    assert json.loads((out / "summary.json").read_text())["steps"] == 4
    losses = [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert len(losses) == 4 and all(math.isfinite(x) and x > 0 for x in losses)
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    return losses


def report(name, summary, losses, **extra):
    numbers = {"test": name, "steps": summary["steps"], "train_loss": summary["train_loss"],
               "eval_loss": summary["eval_loss"], "step_losses": losses, "seconds": summary["seconds"],
               "tokens_per_second": summary["tokens_per_second"], "trainable": summary["trainable_parameters"],
               "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1), **extra}
    print(f"\ngpu-run {json.dumps(numbers)}")


def test_bf16_lora_with_activation_checkpointing(tmp_path, tiny_model, tokenizer, prepared):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    summary = run_train(train_config(tmp_path, tiny_model), log=lambda *_: None)
    out = tmp_path / "run"
    losses = check_summary(summary, out)
    assert "precision: auto" in (out / "config.yaml").read_text()  # auto resolved to bf16 on CUDA, checked below
    trainer = prepared["run"].trainer
    assert trainer.args.bf16 and trainer.args.activation_checkpointing
    base = trainer.model.get_base_model()
    assert base.is_activation_checkpointing  # the decoder layers really recompute their activations
    frozen = [p for n, p in trainer.model.named_parameters() if "lora_" not in n]
    lora = [p for n, p in trainer.model.named_parameters() if "lora_" in n]
    assert frozen and all(p.dtype == torch.bfloat16 and p.is_cuda and not p.requires_grad for p in frozen)
    assert lora and all(p.is_cuda and p.requires_grad for p in lora)
    assert torch.cuda.max_memory_allocated() > 0

    # The saved adapter reloads onto a fresh bf16 base on the GPU, and training moved it (LoRA B starts at zero).
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).cuda()
    ids = torch.tensor([tokenizer("Will the government raise pensions?")["input_ids"]], device="cuda")
    with torch.no_grad():
        base_logits = fresh(ids).logits
        tuned = PeftModel.from_pretrained(fresh, out / "adapter").eval()
        tuned_logits = tuned(ids).logits
    assert any(p.abs().sum() > 0 for n, p in tuned.named_parameters() if "lora_B" in n)
    assert torch.isfinite(tuned_logits).all() and not torch.allclose(base_logits, tuned_logits)
    report("bf16", summary, losses, base_dtype=str(base.dtype), lora_dtype=str(lora[0].dtype),
           activation_checkpointing=base.is_activation_checkpointing, torch=torch.__version__,
           gpu=torch.cuda.get_device_name())


def test_qlora_trains_a_4bit_base(tmp_path, tiny_model, prepared):
    bnb = pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes: pip install 'sprout[gpu]'")
    summary = run_train(train_config(tmp_path, tiny_model, qlora=True, lora={"r": 64, "alpha": 128}),
                        log=lambda *_: None)
    losses = check_summary(summary, tmp_path / "run")
    trainer = prepared["run"].trainer
    base = trainer.model.get_base_model()

    # The base was loaded in 4-bit NF4 with double quantization, computing in bf16, on the GPU.
    assert base.is_quantized and base.quantization_method == "bitsandbytes"
    quantization = base.config.quantization_config
    quantization = quantization.to_dict() if hasattr(quantization, "to_dict") else quantization
    assert quantization["load_in_4bit"] and quantization["bnb_4bit_quant_type"] == "nf4"
    four_bit = [m for m in base.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    for module in four_bit:
        state = module.weight.quant_state
        assert module.weight.dtype == torch.uint8 and module.weight.is_cuda
        assert state.quant_type == "nf4" and state.nested and module.compute_dtype == torch.bfloat16
    assert trainer.args.activation_checkpointing and base.is_activation_checkpointing

    # The optimizer is bitsandbytes' paged AdamW with 8-bit state (uint8, paged for the largest LoRA matrices).
    assert trainer.args.optim == "paged_adamw_8bit"
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
    assert isinstance(optimizer, bnb.optim.optimizer.Optimizer8bit) and optimizer.is_paged
    states = [state for state in optimizer.state.values() if "state1" in state]
    assert states and any(state["state1"].dtype == torch.uint8 for state in states)
    assert any(getattr(state["state1"], "is_paged", False) for state in states)
    report("qlora", summary, losses, linear4bit=len(four_bit), optimizer=type(optimizer).__name__,
           uint8_states=sum(state["state1"].dtype == torch.uint8 for state in states), optimizer_states=len(states),
           paged_states=sum(bool(getattr(state["state1"], "is_paged", False)) for state in states),
           bitsandbytes=bnb.__version__)


def test_the_local_backend_eval_and_chat_pick_cuda_in_bf16_on_auto(tiny_model, tmp_path):
    from sprout_trainer.evaluate import chat, run_eval

    from sprout.backends.base import Sampling
    from sprout.backends.local import LocalBackend

    backend = LocalBackend(tiny_model, device="auto")
    assert backend.device == "cuda" and next(backend.model.parameters()).dtype == torch.bfloat16
    assert backend.batch_size == 128 and backend.model_id.endswith(":bfloat16")
    [[reply]] = backend.generate([[{"role": "user", "content": "Hi"}]], Sampling(max_tokens=4))
    assert reply.completion_tokens > 0
    summary = run_train(TrainConfig(model=str(tiny_model), data=DATA, out_dir=tmp_path / "run", max_steps=2,
                                    batch_size=4, validation_share=0), log=lambda *_: None)
    adapter = tmp_path / "run" / "adapter"
    report = run_eval(adapter, REPO / "seeds" / "tasks" / "political_promises_heldout.jsonl", tmp_path / "eval",
                      limit=4, max_tokens=4, log=lambda *_: None)
    assert summary["device"] == "cuda" and report["rows"] == 4
    assert isinstance(chat(adapter, "Hi", max_tokens=4, log=lambda *_: None), str)
