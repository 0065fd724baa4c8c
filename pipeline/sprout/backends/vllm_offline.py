"""vLLM in-process ("offline") backend: `vllm.LLM` on the machine's GPUs, one engine call per batch.

vLLM schedules with continuous batching, so it must see a whole batch at once: chat conversations go through one
`LLM.chat` call and raw prompts through one `LLM.generate` call (a batch mixing both, or mixing conversations that
end in a prefill with ones that do not, becomes one call per kind, results put back in input order). `n` samples
come from one request (`SamplingParams.n`), stop strings are cut by vLLM itself and any number of them is allowed.

vLLM is imported only when this backend is built; without it the error says how to install it. vLLM needs a CUDA
machine and could not be installed where sprout is developed: see the README for what was run and what was not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sprout.backends.base import Backend, Completion, Prompt, Sampling, is_prefill
from sprout.core.errors import UserError

INSTALL = "pip install 'sprout[vllm]' on a machine with a CUDA GPU"


def import_vllm():
    try:
        import vllm
    except ImportError as error:
        raise UserError(f"backend.kind vllm needs vLLM, which is not installed here ({error}). Fix: {INSTALL}, or "
                        "use backend.kind local or openai (e.g. against `vllm serve`).") from None
    return vllm


def sampling_params_kwargs(sampling: Sampling) -> dict[str, Any]:
    """sprout's sampling settings as `vllm.SamplingParams` arguments (same names, same meanings: vLLM's presence
    and frequency penalties are OpenAI's additive ones; temperature 0 is greedy)."""
    return {"n": sampling.n, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens, "stop": list(sampling.stop) or None, "seed": sampling.seed,
            "presence_penalty": sampling.presence_penalty, "frequency_penalty": sampling.frequency_penalty}


def engine_kwargs(model: str, tensor_parallel_size: int, gpu_memory_utilization: float, max_model_len: int | None,
                  dtype: str, data_parallel_size: int) -> dict[str, Any]:
    """`vllm.LLM` arguments: vLLM's own engine options, passed through under their own names. `data_parallel_size`
    (replicas of the model, each on `tensor_parallel_size` GPUs) goes only when above 1, so versions of vLLM
    without it still start."""
    kwargs = {"model": model, "tensor_parallel_size": tensor_parallel_size,
              "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len, "dtype": dtype}
    if data_parallel_size > 1:
        kwargs["data_parallel_size"] = data_parallel_size
    return kwargs


def engine_calls(batch: list[Prompt]) -> dict[str, list[int]]:
    """Which prompts go into which engine call: `completion` (raw text, LLM.generate), `chat` (LLM.chat opening an
    assistant turn) and `prefill` (LLM.chat continuing a final assistant message). Indices keep input order."""
    calls: dict[str, list[int]] = {}
    for i, prompt in enumerate(batch):
        kind = "completion" if isinstance(prompt, str) else "prefill" if is_prefill(prompt) else "chat"
        calls.setdefault(kind, []).append(i)
    return calls


def to_completions(output, n: int) -> list[Completion]:
    """One `RequestOutput` -> `n` Completions; the prompt's tokens are counted on the first sample only."""
    samples = sorted(output.outputs, key=lambda o: o.index)
    if len(samples) != n:
        raise RuntimeError(f"vLLM returned {len(samples)} samples where {n} were asked for")
    prompt_tokens = len(output.prompt_token_ids or [])
    return [Completion(text=s.text.strip(), finish_reason="length" if s.finish_reason == "length" else "stop",
                       prompt_tokens=prompt_tokens if j == 0 else 0, completion_tokens=len(s.token_ids))
            for j, s in enumerate(samples)]


class VLLMBackend(Backend):
    def __init__(self, model: str | Path, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, dtype: str = "auto", data_parallel_size: int = 1, llm=None):
        self.vllm = import_vllm()
        model = str(model)
        if Path(model).is_dir():
            from sprout.backends.local import model_fingerprint

            self.model_id = f"vllm:{Path(model).name}:{model_fingerprint(Path(model))}"
        else:
            self.model_id = f"vllm:{model}"
        self.llm = llm or self.vllm.LLM(**engine_kwargs(model, tensor_parallel_size, gpu_memory_utilization,
                                                        max_model_len, dtype, data_parallel_size))

    def generate(self, batch: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        params = self.vllm.SamplingParams(**sampling_params_kwargs(sampling))
        results: list[list[Completion] | None] = [None] * len(batch)
        for kind, indices in engine_calls(batch).items():
            prompts = [batch[i] for i in indices]
            if kind == "completion":
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            else:
                prefill = kind == "prefill"
                outputs = self.llm.chat(prompts, params, use_tqdm=False, add_generation_prompt=not prefill,
                                        continue_final_message=prefill)
            for i, output in zip(indices, outputs, strict=True):
                results[i] = to_completions(output, sampling.n)
        return results  # type: ignore[return-value]
