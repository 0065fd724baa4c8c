"""Training benchmark: sprout's trainer vs a plain TRL SFTTrainer script, same data, model, LoRA and batch.

Each side runs in its own process (so peak RSS is its own) for the same number of steps on SmolLM2-135M (CPU, fp32,
2 threads). Throughput is non-padding tokens per second of training (TRL's own `num_input_tokens_seen`, counted the
same way on both sides). The packing figure is the share of real (non-pad) tokens per batch on short examples,
with and without TRL's `bfd` packing. Prints a table and writes bench/results/train.json.

    python bench/train.py [--steps 8] [--batch 2] [--accumulation 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "train.json"

PLAIN_TRL = r"""
import json, resource, sys, time
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

data, model_dir, steps, batch, accumulation, out = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]), sys.argv[6]
torch.set_num_threads(2)
tokenizer = AutoTokenizer.from_pretrained(model_dir)
trainer = SFTTrainer(
    model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), processing_class=tokenizer,
    train_dataset=load_dataset("json", data_files=data, split="train"),
    peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
    args=SFTConfig(output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=3e-4,
                   gradient_accumulation_steps=accumulation,
                   max_length=512, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True, seed=42,
                   include_num_input_tokens_seen="non_padding", lr_scheduler_type="cosine", warmup_steps=0.03,
                   weight_decay=0.01, max_grad_norm=2.0,
                   activation_checkpointing=False))  # sprout's CPU setting (TRL's own default turns it on)
started = time.monotonic()
trainer.train()
seconds = time.monotonic() - started
print(json.dumps({"tokens": trainer.state.num_input_tokens_seen, "seconds": seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SPROUT = r"""
import json, sys
from sprout_trainer.config import TrainConfig
from sprout_trainer.train import run_train

data, steps, batch, accumulation, out = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
summary = run_train(TrainConfig(data=data, out_dir=out, max_steps=steps, batch_size=batch, threads=2,
                                grad_accumulation=accumulation, validation_share=0), log=lambda *_: None)
print(json.dumps(summary))
"""


def training_rows() -> list[dict]:
    """Alpaca-style rows from the seed tasks: real text of mixed lengths, short on average (as synthetic data is)."""
    rows = []
    for line in (REPO / "seeds" / "general.jsonl").read_text().splitlines():
        task = json.loads(line)
        for instance in task["instances"]:
            rows.append({"instruction": task["instruction"], "input": instance["input"], "output": instance["output"]})
    return rows


def run(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        sys.exit(f"benchmark step failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps")
    parser.add_argument("--batch", type=int, default=2, help="per-device batch (sprout's default)")
    parser.add_argument("--accumulation", type=int, default=4, help="gradient accumulation (sprout's default)")
    args = parser.parse_args()
    from sprout.backends.model_store import resolve_model
    from sprout.datasets.chat_rows import to_messages

    model_dir = resolve_model("embedded")
    rows = training_rows()
    with tempfile.TemporaryDirectory() as tmp:
        alpaca = Path(tmp) / "alpaca.jsonl"
        alpaca.write_text("".join(json.dumps(r) + "\n" for r in rows))
        messages = Path(tmp) / "messages.jsonl"  # what a user of plain TRL feeds it: the same conversations
        messages.write_text("".join(json.dumps({"messages": to_messages(r)}) + "\n" for r in rows))
        shape = (str(args.steps), str(args.batch), str(args.accumulation))
        plain = run(PLAIN_TRL, str(messages), str(model_dir), *shape, f"{tmp}/plain")
        ours = run(SPROUT, str(alpaca), *shape, f"{tmp}/sprout")
    plain_tps = plain["tokens"] / plain["seconds"]
    report = {
        "steps": args.steps, "batch": args.batch, "accumulation": args.accumulation, "rows": len(rows),
        "plain_trl": {"tokens_per_second": round(plain_tps, 1), "peak_rss_mb": round(plain["peak_rss_mb"])},
        "sprout": {"tokens_per_second": ours["tokens_per_second"], "peak_rss_mb": round(ours["peak_rss_mb"])},
        "throughput_ratio": round(ours["tokens_per_second"] / plain_tps, 3),
        "real_token_share": ours["real_token_share"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"LoRA SFT, SmolLM2-135M, CPU fp32, {args.steps} steps x batch {args.batch} x accumulation "
          f"{args.accumulation} ({len(rows)} rows)")
    print(f"{'':24}{'tokens/s':>10}{'peak RSS':>12}")
    print(f"{'plain TRL SFTTrainer':24}{plain_tps:>10.1f}{plain['peak_rss_mb']:>9.0f} MB")
    print(f"{'sprout train':24}{ours['tokens_per_second']:>10.1f}{ours['peak_rss_mb']:>9.0f} MB")
    print(f"throughput ratio sprout / plain TRL: {report['throughput_ratio']:.3f} (goal >= 0.95); "
          f"sprout peak RSS goal < 4096 MB")
    share = ours["real_token_share"]
    print(f"real-token share per batch: {share['unpacked']:.1%} unpacked -> {share['packed']:.1%} packed "
          "(bfd; goal >= 95%)")


if __name__ == "__main__":
    main()
