"""The vLLM offline backend. vLLM cannot be installed on the machines sprout is built on (no CUDA), so the mapping
and batching logic is tested against a recording stand-in for `vllm` (the documented `LLM.chat` / `LLM.generate` /
`SamplingParams` surface), and the real thing by a `gpu` test that runs wherever vLLM imports and CUDA is present."""

import importlib.util
import sys
import types
from dataclasses import dataclass, field

import pytest

from sprout.backends.base import Sampling
from sprout.backends.cache import CachedBackend
from sprout.backends.vllm_offline import VLLMBackend, engine_calls, sampling_params_kwargs
from sprout.config.loader import load_config
from sprout.core.errors import UserError
from tests.test_cli import sprout

CHAT = [{"role": "user", "content": "Name a colour."}]
PREFILL = [{"role": "user", "content": "Count."}, {"role": "assistant", "content": "1."}]


@dataclass
class Output:  # vllm.outputs.CompletionOutput: the fields sprout reads
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput
    prompt_token_ids: list[int]
    outputs: list[Output]


@dataclass
class RecordingLLM:
    """Answers each prompt with its own text reversed (+ the sample index); records every engine call."""

    calls: list[tuple] = field(default_factory=list)

    def _answer(self, key: str, params) -> RequestOutput:
        samples = [Output(index=j, text=f" {key[::-1]}#{j} ", token_ids=list(range(3 + j)),
                          finish_reason="length" if "long" in key else "stop") for j in reversed(range(params.n))]
        return RequestOutput(prompt_token_ids=list(range(len(key))), outputs=samples)  # samples out of order

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(("generate", list(prompts), params, {"use_tqdm": use_tqdm}))
        return [self._answer(p, params) for p in prompts]

    def chat(self, messages, params, use_tqdm=True, add_generation_prompt=True, continue_final_message=False):
        self.calls.append(("chat", list(messages), params, {"use_tqdm": use_tqdm, "add_generation_prompt":
                                                             add_generation_prompt, "continue_final_message":
                                                             continue_final_message}))
        return [self._answer(m[-1]["content"], params) for m in messages]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    module.SamplingParams = SamplingParams
    module.LLM = lambda **kwargs: pytest.fail(f"the test passes its own engine, not {kwargs}")
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_sampling_maps_one_to_one_onto_sampling_params():
    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=64, stop=("\n5.", "\n5 .", "###", "END", "X"), n=3,
                        seed=11, presence_penalty=2.0, frequency_penalty=0.5)
    assert sampling_params_kwargs(sampling) == {
        "n": 3, "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "stop": ["\n5.", "\n5 .", "###", "END", "X"],
        "seed": 11, "presence_penalty": 2.0, "frequency_penalty": 0.5}  # all stops kept: vLLM has no limit of 4
    assert sampling_params_kwargs(Sampling())["stop"] is None


def test_a_homogeneous_batch_is_one_engine_call_with_all_prompts(fake_vllm):
    llm = RecordingLLM()
    backend = VLLMBackend("some/model", llm=llm)
    batch = [[{"role": "user", "content": f"task {i}"}] for i in range(5)]
    results = backend.generate(batch, Sampling(n=2, max_tokens=8))
    assert len(llm.calls) == 1
    kind, prompts, params, options = llm.calls[0]
    assert kind == "chat" and prompts == batch and params.n == 2 and params.max_tokens == 8
    assert options == {"use_tqdm": False, "add_generation_prompt": True, "continue_final_message": False}
    assert [[c.text for c in row] for row in results] == [[f"{i} ksat#0", f"{i} ksat#1"] for i in range(5)]
    assert [c.prompt_tokens for c in results[0]] == [6, 0]  # the prompt is counted once per request
    assert [c.completion_tokens for c in results[0]] == [3, 4]


def test_a_mixed_batch_is_one_call_per_kind_and_comes_back_in_input_order(fake_vllm):
    llm = RecordingLLM()
    backend = VLLMBackend("some/model", llm=llm)
    batch = ["raw one", CHAT, PREFILL, "raw long two", CHAT]
    results = backend.generate(batch, Sampling())
    assert sorted((c[0], len(c[1])) for c in llm.calls) == [("chat", 1), ("chat", 2), ("generate", 2)]
    prefill_call = next(c for c in llm.calls if c[1] == [PREFILL])
    assert prefill_call[3]["continue_final_message"] and not prefill_call[3]["add_generation_prompt"]
    assert [row[0].text for row in results] == ["eno war#0", ".ruoloc a emaN#0", ".1#0", "owt gnol war#0",
                                                ".ruoloc a emaN#0"]
    assert [row[0].finish_reason for row in results] == ["stop", "stop", "stop", "length", "stop"]


def test_through_the_cache_a_repeat_makes_no_engine_call(fake_vllm, tmp_path):
    llm = RecordingLLM()
    backend = CachedBackend(VLLMBackend("some/model", llm=llm), tmp_path / "cache.sqlite")
    first = backend.generate([CHAT, "raw"], Sampling(n=2), generator="test")
    again = backend.generate([CHAT, "raw"], Sampling(n=2), generator="test")
    assert len(llm.calls) == 2 and [[c.text for c in r] for r in again] == [[c.text for c in r] for r in first]
    assert backend.usage.cache_hits == 4 and backend.model_id == "vllm:some/model"


def test_config_options_pass_through_to_the_engine_under_vllms_own_names(fake_vllm, tmp_path):
    """`tensor_parallel_size` and `data_parallel_size` reach `vllm.LLM` as vLLM names them (its EngineArgs)."""
    made = []
    fake_vllm.LLM = lambda **kwargs: made.append(kwargs) or RecordingLLM()
    VLLMBackend("some/model", tensor_parallel_size=2, data_parallel_size=4, max_model_len=4096)
    VLLMBackend("some/model")
    assert made[0] == {"model": "some/model", "tensor_parallel_size": 2, "data_parallel_size": 4,
                       "gpu_memory_utilization": 0.9, "max_model_len": 4096, "dtype": "auto"}
    assert "data_parallel_size" not in made[1]  # at 1 it is left to vLLM (older versions lack it)
    path = tmp_path / "c.yaml"
    path.write_text("backend:\n  kind: vllm\n  data_parallel_size: 2\n  tensor_parallel_size: 4\n")
    config = load_config(path)
    assert (config.backend.data_parallel_size, config.backend.tensor_parallel_size) == (2, 4)


def test_engine_calls_group_by_kind():
    assert engine_calls(["a", CHAT, PREFILL, "b"]) == {"completion": [0, 3], "chat": [1], "prefill": [2]}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_error_says_how_to_install_it(tmp_path):
    with pytest.raises(UserError, match=r"pip install 'sprout\[vllm\]' on a machine with a CUDA GPU"):
        VLLMBackend("some/model")
    out = tmp_path / "out"
    result = sprout("data", "--set", "backend.kind=vllm", "--set", f"out_dir={out}")
    assert result.returncode == 2 and "sprout[vllm]" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()  # nothing written


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (needs a CUDA machine)")
def test_real_vllm_serves_chat_prefill_and_completion():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    from sprout.backends.model_store import resolve_model

    backend = VLLMBackend(resolve_model("embedded", log=lambda *_: None), gpu_memory_utilization=0.3,
                          max_model_len=2048)
    batch = [CHAT, PREFILL, "Fruits:\n1. apple\n2. pear\n3."]
    sampled = backend.generate(batch, Sampling(temperature=0.8, max_tokens=24, n=2, stop=("\n5.",)))
    assert [len(row) for row in sampled] == [2, 2, 2]
    assert all(c.completion_tokens > 0 and "\n5." not in c.text for row in sampled for c in row)
    greedy = Sampling(temperature=0.0, max_tokens=16)
    assert backend.generate(batch, greedy)[2][0].text == backend.generate([batch[2]], greedy)[0][0].text
