"""Local backend on llama.cpp (`backend.engine: llama.cpp`, the default for the embedded model on the CPU).

The engine (llama_engine.py) batches continuously and computes the prompt prefix a call's requests share once; this
class is the backend contract around it. Prompts are rendered and tokenized exactly as the transformers engine does
(the model folder's Hugging Face tokenizer and chat template, backends/rendering.py), and answers are cut at stop
strings the same way, so the two engines differ only in how the numbers are computed.

Determinism: each request draws from its own sampler, seeded from the call's seed and the request's place in the
call, so a call made again gives the same answers whatever else runs; the response cache keys on `model_id`, which
names the engine and the weights file, so answers of the two engines are never mixed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sprout.backends.base import Backend, Completion, Prompt, Sampling
from sprout.backends.rendering import answer_text, end_token_ids, hits_stop, render, stop_window

DEFAULT_SLOTS = 16  # sequences decoded together: 16 -> 8 loses ~25% decode throughput on 2 cores, 32 gains ~5%


def request_seed(seed: int, row: int) -> int:
    """A request's sampler seed, from the call's seed and the row's place in the call (prompt i, sample j)."""
    digest = hashlib.sha256(f"{seed}:{row}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class LlamaCppBackend(Backend):
    def __init__(self, gguf: Path, tokenizer_dir: Path, threads: int | None = None, slots: int | None = None,
                 **engine_options):  # LlamaEngine's other options (benchmarks compare its variants)
        # The embedded model's tokenizer is a plain `tokenizers` one (tokenizer_class TokenizersBackend, which
        # PreTrainedTokenizerFast is): loaded by its class, it needs no torch, which AutoTokenizer's import pulls in
        # (~2.5 s a process). tests/test_llama_backend_tokenizer.py holds it to AutoTokenizer's renderings and ids.
        from transformers import GenerationConfig, PreTrainedTokenizerFast

        from sprout.backends.llama_engine import LlamaEngine

        self.gguf = Path(gguf)
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
        try:
            generation_config = GenerationConfig.from_pretrained(tokenizer_dir)
        except OSError:  # a folder without generation_config.json
            generation_config = None
        self.end_ids = end_token_ids(self.tokenizer, generation_config)
        self.engine = LlamaEngine(self.gguf, threads=threads or _cores(), slots=slots or DEFAULT_SLOTS,
                                  **engine_options)
        self.model_id = f"llama.cpp:{self.gguf.name}:{_fingerprint(self.gguf)}"
        self.batch_size = self.engine.slots
        self.phase_seconds = self.engine.phase_seconds

    def render(self, prompt: Prompt) -> str:
        return render(self.tokenizer, prompt)

    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        from sprout.backends.llama_engine import Request

        tokens = [self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"] for prompt in batch]
        rows = [(i, j) for i in range(len(batch)) for j in range(sampling.n)]
        requests = [Request(tokens[i], request_seed(sampling.seed, k)) for k, (i, _) in enumerate(rows)]
        window = stop_window(sampling.stop)
        finished = self.engine.run(requests, sampling, self.end_ids,
                                   lambda new: hits_stop(self.tokenizer, new, sampling.stop, window))
        results: list[list[Completion | None]] = [[None] * sampling.n for _ in batch]
        for (i, j), row in zip(rows, finished, strict=True):
            results[i][j] = Completion(text=answer_text(self.tokenizer, row.tokens, sampling.stop),
                                       finish_reason=row.finish_reason, prompt_tokens=len(tokens[i]),
                                       completion_tokens=len(row.tokens))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.engine.close()


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _fingerprint(gguf: Path) -> str:
    """Identify the weights for the cache key: file name and size, and a hash of the file's first MB (its header:
    metadata, tensor types and shapes)."""
    with gguf.open("rb") as handle:
        head = handle.read(1 << 20)
    return hashlib.sha256(head + str(gguf.stat().st_size).encode()).hexdigest()[:12]
