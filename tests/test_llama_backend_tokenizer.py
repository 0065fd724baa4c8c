"""The llama.cpp backend loads the embedded model's tokenizer as PreTrainedTokenizerFast (no torch import) instead of
AutoTokenizer: it must read every prompt exactly as AutoTokenizer does — the same rendered text, the same token
ids, the same decoded answers and the same end-of-answer tokens.

Conversations come from every prompt file we ship (their messages as written, Jinja markup included, with and
without the assistant prefill some end in), a raw completion-mode prompt, and texts that tokenizers get wrong
first: special-token markup inside a message, non-Latin scripts and emoji, runs of whitespace and newlines."""

import json
import subprocess
import sys

import pytest
import yaml
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerFast

from sprout.backends.rendering import answer_text, end_token_ids, render
from sprout.core.prompts import PROMPTS_DIR

AWKWARD = ["<|im_end|> is not the end, <|im_start|>user neither",
           "Übersetze: 東京は日本の首都です。 🚀🌱 — «quotes» and ‘curly’ ones",
           "  leading spaces\n\n\n\ttabs\r\nand CRLF   trailing  ",
           "def f(x):\n    return x ** 2  # code keeps its indentation\n"]


def shipped_conversations() -> list[tuple[str, list[dict]]]:
    conversations = []
    for path in sorted(PROMPTS_DIR.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for form in ("messages", "chat"):
            items = [m for m in data.get(form) or [] if "role" in m]  # a `repeat:` block is markup, not a turn
            messages = [{"role": m["role"], "content": str(m["content"])} for m in items]
            if messages:
                conversations.append((f"{path.relative_to(PROMPTS_DIR)}:{form}", messages))
                if messages[-1]["role"] == "assistant":  # the same turns without the prefill
                    conversations.append((f"{path.relative_to(PROMPTS_DIR)}:{form}-prefill", messages[:-1]))
        for template in data.get("templates") or []:  # FLAN templates: the records they expand into, as chats
            user = "\n\n".join(str(template[key]) for key in ("instruction", "input") if template.get(key))
            conversations.append((f"{path.relative_to(PROMPTS_DIR)}:{template['name']}",
                                  [{"role": "user", "content": user},
                                   {"role": "assistant", "content": str(template["output"])}]))
    return conversations


CONVERSATIONS = shipped_conversations() + [
    (f"awkward-{i}", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}])
    for i, text in enumerate(AWKWARD)] + [("awkward-prefill", [{"role": "user", "content": AWKWARD[0]},
                                                               {"role": "assistant", "content": AWKWARD[1]}])]


@pytest.fixture(scope="module")
def tokenizers(model_dir):
    return AutoTokenizer.from_pretrained(model_dir), PreTrainedTokenizerFast.from_pretrained(model_dir)


def test_every_shipped_prompt_file_is_covered():
    names = {name.split(":")[0] for name, _ in CONVERSATIONS if not name.startswith("awkward")}
    assert names == {str(p.relative_to(PROMPTS_DIR)) for p in PROMPTS_DIR.rglob("*.yaml")}


@pytest.mark.parametrize("name,messages", CONVERSATIONS, ids=[name for name, _ in CONVERSATIONS])
def test_renders_and_tokenizes_as_autotokenizer(tokenizers, name, messages):
    auto, fast = tokenizers
    text = render(auto, messages)
    assert render(fast, messages) == text
    ids = auto(text, add_special_tokens=False)["input_ids"]
    assert fast(text, add_special_tokens=False)["input_ids"] == ids
    for stops in ([], ["<|im_end|>"], ["\n\n", "Input:"]):
        assert answer_text(fast, ids, stops) == answer_text(auto, ids, stops)


def test_raw_prompts_special_tokens_and_end_ids_match(tokenizers, model_dir):
    auto, fast = tokenizers
    for text in AWKWARD:
        assert render(fast, text) == render(auto, text)
        assert fast(text)["input_ids"] == auto(text)["input_ids"]
    assert (fast.bos_token_id, fast.eos_token_id, fast.pad_token_id) == \
        (auto.bos_token_id, auto.eos_token_id, auto.pad_token_id)
    assert fast.all_special_ids == auto.all_special_ids
    generation_config = GenerationConfig.from_pretrained(model_dir)
    assert end_token_ids(fast, generation_config) == end_token_ids(auto, generation_config)


def test_a_llama_cpp_run_never_imports_torch(model_dir):
    """What the tokenizer change is for: a process that builds the llama.cpp backend (and resolves `device: auto`)
    loads no torch, so it starts ~2.5 s sooner. On a machine with a GPU driver `auto` must ask torch whether CUDA
    works, so there the run says `device: cpu`, which never needs torch."""
    from sprout.backends.devices import gpu_driver_present

    device = "cpu" if gpu_driver_present() else "auto"
    script = ("import sys, json\n"
              "from sprout.backends.config import LocalBackendConfig\n"
              "from sprout.backends.local_engine import choose_engine\n"
              "from sprout.backends.llama_backend import LlamaCppBackend\n"
              "from sprout.backends.model_store import prepare_engine_gguf\n"
              f"engine = choose_engine(LocalBackendConfig(device={device!r}), log=lambda *_: None)\n"
              f"backend = LlamaCppBackend(prepare_engine_gguf('auto'), {str(model_dir)!r}, threads=1, slots=1)\n"
              "backend.close()\n"
              "print(json.dumps([engine, 'torch' in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == ["llama.cpp", False]
