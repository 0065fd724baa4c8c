"""The local transformers backend on the real embedded model (slow), and its penalty processor (fast)."""

import pytest
import torch

from sprout.backends.base import Sampling
from sprout.backends.decode import _top_p, _top_p_sorted, penalize
from sprout.backends.local import LocalBackend
from sprout.backends.model_store import prepare_embedded

ASK = [{"role": "user", "content": "Name three animals that live in the sea."}]
OTHER = [{"role": "user", "content": "Give me a tip for sleeping better."}]


def test_penalty_follows_openais_additive_rule():
    counts = torch.tensor([[0.0, 2.0, 1.0, 0.0]])  # token 1 generated twice, token 2 once
    out = penalize(torch.zeros(1, 4), counts, presence=2.0, frequency=0.5)
    assert torch.equal(out, torch.tensor([[0.0, -3.0, -2.5, 0.0]]))


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.equal(_top_p(probs, 0.7), torch.tensor([[0.5, 0.3, 0.0, 0.0]]))
    assert torch.equal(_top_p(probs, 0.5), torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    assert torch.equal(_top_p(probs, 1.0), probs)


@pytest.fixture(scope="module")
def backend():
    return LocalBackend(prepare_embedded(), batch_size=4, threads=2)


@pytest.mark.slow
def test_n_samples_per_prompt_with_token_usage(backend):
    out = backend.generate([ASK, OTHER], Sampling(temperature=0.9, max_tokens=24, n=2, seed=1))
    assert [len(row) for row in out] == [2, 2]
    for row in out:
        for completion in row:
            assert completion.text and completion.prompt_tokens > 10 and 0 < completion.completion_tokens <= 25
    assert out[0][0].text != out[0][1].text  # two samples, not one copied


@pytest.mark.slow
def test_same_seed_same_text_and_length_limit(backend):
    sampling = Sampling(temperature=0.8, max_tokens=12, seed=7)
    first = backend.generate([ASK, OTHER], sampling)
    again = backend.generate([ASK, OTHER], sampling)
    assert [r[0].text for r in first] == [r[0].text for r in again]
    capped = backend.generate([ASK], Sampling(temperature=0.0, max_tokens=5))[0][0]
    assert capped.finish_reason == "length" and capped.completion_tokens == 5


@pytest.mark.slow
def test_stop_strings_cut_the_text(backend):
    full = backend.generate([ASK], Sampling(temperature=0.0, max_tokens=40))[0][0].text
    words = full.split()
    assert len(words) > 6, full
    stop = " " + words[5]
    cut = backend.generate([ASK], Sampling(temperature=0.0, max_tokens=40, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.index(stop)].strip()


@pytest.mark.slow
def test_a_final_assistant_message_is_continued(backend):
    prefill = [{"role": "user", "content": "List four colours, numbered."}, {"role": "assistant", "content": "1."}]
    rendered = backend.render(prefill)
    assert rendered.endswith("<|im_start|>assistant\n1.")  # no new turn opened after the prefill
    reply = backend.generate([prefill], Sampling(temperature=0.0, max_tokens=20))[0][0]
    assert reply.text and not reply.text.startswith("1.")


@pytest.mark.slow
def test_completion_mode_continues_the_raw_text(backend):
    raw = "Fruits and their colours:\n1. Banana: yellow\n2. Cherry: red\n3."
    assert backend.render(raw) == raw  # sent as it is: no chat template, and SmolLM2 adds no BOS
    reply = backend.generate([raw], Sampling(temperature=0.0, max_tokens=12, stop=("\n5.",)))[0][0]
    # The same greedy continuation, decoded independently with transformers' own generate:
    ids = backend.tokenizer(raw, return_tensors="pt")
    expected = backend.model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids["input_ids"].shape[1]:]
    text = backend.tokenizer.decode(expected, skip_special_tokens=True)
    assert reply.text == text[: text.index("\n5.")].strip() if "\n5." in text else text.strip()
    assert reply.prompt_tokens == ids["input_ids"].shape[1]
    chat_and_raw = backend.generate([ASK, raw], Sampling(temperature=0.0, max_tokens=12, stop=("\n5.",)))
    assert chat_and_raw[1][0].text == reply.text  # one batch may mix both modes


def test_top_p_through_the_head_equals_a_full_sort_also_for_flat_rows():
    torch.manual_seed(0)
    peaked = torch.softmax(torch.randn(3, 5000) * 6, dim=-1)  # nucleus inside the head
    flat = torch.softmax(torch.randn(2, 5000) * 0.1, dim=-1)  # nucleus far wider than the head
    probs = torch.cat([peaked, flat])
    for top_p in (0.5, 0.9, 0.99):
        fast, full = _top_p(probs, top_p, head=64), _top_p_sorted(probs, top_p)
        assert torch.equal(fast > 0, full > 0) and torch.allclose(fast, full)
    assert (_top_p(flat, 0.9, head=64) > 0).sum(-1).min() > 64  # the flat rows really went past the head
