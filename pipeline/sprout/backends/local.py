"""Local backend on transformers: left-padded batches on CPU (fp32) or GPU, decoded by `decode.sample_batch`.

transformers has no presence/frequency penalty (its `repetition_penalty` is multiplicative and counts the prompt),
so sprout's decode loop applies them with OpenAI's additive definition over the generated tokens; the Self-Instruct
recipe's presence penalty 2 is what keeps a small model from repeating one list item forever.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sprout.backends.base import Backend, Completion, Prompt, Sampling
from sprout.backends.decode import sample_batch
from sprout.backends.devices import compute_dtype, resolve_device
from sprout.backends.rendering import answer_text, end_token_ids, render


def model_fingerprint(model_dir: Path) -> str:
    """Identify the weights for the cache key: config plus weight-file sizes (cheap, changes when weights do)."""
    digest = hashlib.sha256((model_dir / "config.json").read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:12]


class LocalBackend(Backend):
    def __init__(self, model_dir: Path, batch_size: int | None = None, threads: int | None = None,
                 device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar per model load is noise in a run's output
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model_dir = Path(model_dir)
        self.device = device = resolve_device(device, "backend.device")
        dtype = compute_dtype(device)
        # bf16 on a GPU samples differently from fp32 on the CPU: its answers are cached apart.
        precision = "" if dtype == torch.float32 else f":{str(dtype).removeprefix('torch.')}"
        self.model_id = f"transformers:{self.model_dir.name}:{model_fingerprint(self.model_dir)}{precision}"
        self.batch_size = batch_size or (128 if device.startswith("cuda") else 32)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.padding_side = "left"  # decoder-only models must continue right after each prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # fp32 on CPU: bf16 kernels crash some CPUs outright ("illegal instruction").
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).to(device).eval()
        self.phase_seconds = {"prefill": 0.0, "decode": 0.0}  # decode.sample_batch's clock

    @classmethod
    def from_model(cls, model, tokenizer, model_id: str, batch_size: int = 8,
                   device: str | None = None) -> LocalBackend:
        """A backend over a model already in memory (e.g. a PEFT model for `sprout eval`/`chat`)."""
        import torch

        backend = cls.__new__(cls)
        device = device or str(next(model.parameters()).device)  # where the model already is
        backend.torch, backend.model_id, backend.batch_size, backend.device = torch, model_id, batch_size, device
        backend.model_dir = None
        backend.phase_seconds = {"prefill": 0.0, "decode": 0.0}
        backend.tokenizer, backend.model = tokenizer, model.eval()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return backend

    def render(self, prompt: Prompt) -> str:
        """The exact text the model reads (backends/rendering.py)."""
        return render(self.tokenizer, prompt)

    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        texts = [self.render(prompt) for prompt in batch]
        rows = [(i, j) for i in range(len(batch)) for j in range(sampling.n)]
        # Similar lengths together waste less padding; the order is deterministic, so replays match.
        rows.sort(key=lambda row: len(texts[row[0]]))
        results: list[list[Completion | None]] = [[None] * sampling.n for _ in batch]
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            completions = self._generate_chunk([texts[i] for i, _ in chunk], sampling, seed_offset=start)
            for (i, j), completion in zip(chunk, completions, strict=True):
                results[i][j] = completion
        return results  # type: ignore[return-value]

    def _generate_chunk(self, texts: list[str], sampling: Sampling, seed_offset: int) -> list[Completion]:
        self.torch.manual_seed(sampling.seed + seed_offset)
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        rows = sample_batch(self.model, self.tokenizer, encoded, sampling, self._eos_ids(), self.phase_seconds)
        return [Completion(text=answer_text(self.tokenizer, row.tokens, sampling.stop),
                           finish_reason=row.finish_reason, prompt_tokens=int(mask.sum()),
                           completion_tokens=len(row.tokens))
                for row, mask in zip(rows, encoded["attention_mask"], strict=True)]

    def _eos_ids(self) -> set[int]:
        return end_token_ids(self.tokenizer, self.model.generation_config)
