"""Training the model families people tune, on copies of the embedded model carrying each family's chat template as
such a model ships it (the plain template TRL keeps for identity, `trl/chat_templates/<family>.jinja`) and the
family's special tokens: sprout picks TRL's training template, it renders exactly like the model's own, the mask
covers each answer and its end-of-turn token and nothing else, and 2 optimizer steps train with assistant-only loss.
"""

import json
import shutil
import time
from pathlib import Path

import pytest
import trl
from sprout_trainer.config import TrainConfig
from sprout_trainer.data import choose_template, renders_like_own, tokenize
from sprout_trainer.train import prepare, save_adapter

from sprout.core.errors import UserError
from tests.conftest import write

pytestmark = pytest.mark.slow

TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"
# family -> (special tokens as the family's tokenizer has them, bos, eos, end-of-turn marker)
FAMILIES = {
    "llama3": (["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
    "qwen2_5": ([], None, "<|im_end|>", "<|im_end|>"),
    "gemma": (["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<eos>", "<end_of_turn>"),
    "phi3": (["<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>"], None, "<|endoftext|>",
             "<|end|>"),
}
ALL_SPECIAL = sorted({token for specials, *_ in FAMILIES.values() for token in specials})
CONVERSATIONS = [
    [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": "Yes."}],
    [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "And of Spain?"}, {"role": "assistant", "content": "Madrid, since 1561."}],
]


@pytest.fixture(scope="module")
def family_models(model_dir, tmp_path_factory):
    """One copy of the embedded model with every family's special tokens added (embeddings resized once), and per
    family a folder sharing those weights with the family's tokenizer settings and plain chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tmp_path_factory.mktemp("families")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ALL_SPECIAL})
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.resize_token_embeddings(len(tokenizer))
    shared = base / "weights"
    model.save_pretrained(shared)
    folders = {}
    for family, (_, bos, eos, _) in FAMILIES.items():
        folder = base / family
        folder.mkdir()
        for item in shared.iterdir():
            (folder / item.name).symlink_to(item)
        copy = AutoTokenizer.from_pretrained(model_dir)
        copy.add_special_tokens({"additional_special_tokens": ALL_SPECIAL})
        copy.bos_token = bos or copy.bos_token
        copy.eos_token = eos
        copy.chat_template = (TRL_TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
        copy.save_pretrained(folder)
        folders[family] = folder
    return folders


def masked_runs(row, tokenizer) -> list[str]:
    runs, current = [], []
    for token, marked in zip(row["input_ids"], row["assistant_masks"], strict=True):
        if marked:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs + ([tokenizer.decode(current)] if current else [])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_trls_training_template_is_used_renders_like_the_models_own_and_masks_each_answer(family, family_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    template = choose_template("auto", tokenizer)
    assert template == (TRL_TEMPLATES / f"{family}_training.jinja").read_text(encoding="utf-8")
    assert renders_like_own(tokenizer, template)
    end = FAMILIES[family][3]
    for conversation in CONVERSATIONS:
        assert tokenizer.apply_chat_template(conversation, tokenize=False, chat_template=template) == \
            tokenizer.apply_chat_template(conversation, tokenize=False)
        [row] = tokenize([conversation], tokenizer, template, 1024, last_only=False).rows
        answers = [m["content"] for m in conversation if m["role"] == "assistant"]
        runs = masked_runs(row, tokenizer)
        assert len(runs) == len(answers)
        for run, answer in zip(runs, answers, strict=True):
            # the answer and its end-of-turn token (whitespace the family's template puts inside, and Phi-3's final
            # end-of-text, are the family's own choice)
            assert answer + end in (run.strip(), run.strip().removesuffix(tokenizer.eos_token).strip()), run
        prompt_text = tokenizer.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True)
                                        if not m])
        assert not any(answer in prompt_text for answer in answers)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_optimizer_steps_train_only_the_assistant_tokens(family, family_models, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    rows = [{"messages": c} for c in CONVERSATIONS] * 4
    data = write(tmp_path / "chat.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(model=str(family_models[family]), data=data, out_dir=tmp_path / "run", max_steps=2,
                         batch_size=4, grad_accumulation=1, logging_steps=1, threads=2, validation_share=0,
                         max_length=128)
    run = prepare(config, tmp_path / "ck")
    batch = next(iter(run.trainer.get_train_dataloader()))
    template = run.template
    for ids, labels, attention in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        real = ids[attention.bool()].tolist()
        conversation = next(c for c in CONVERSATIONS
                            if tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"] == real)
        [row] = tokenize([conversation], tokenizer, template, 128, last_only=False).rows
        expected = [t for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True) if m]
        assert labels[labels != -100].tolist() == expected  # the collated labels are exactly the answer tokens
        assert tokenizer.convert_tokens_to_ids(FAMILIES[family][3]) in expected  # the model learns to stop
    started = time.monotonic()
    result = run.trainer.train()
    seconds = time.monotonic() - started
    assert result.global_step == 2 and result.training_loss > 0
    masked, total = (sum(sum(r[key]) if key == "assistant_masks" else len(r[key]) for r in run.train.rows)
                     for key in ("assistant_masks", "input_ids"))  # 2 steps of 4 rows: every row once
    print(f"{family}: {(run.metrics.trained_tokens or total) / seconds:.0f} tokens/s over 2 steps, {masked} answer "
          f"tokens of {total}")
    adapter = tmp_path / "adapter"
    save_adapter(run.trainer.model, run.tokenizer, template, config, adapter)
    # eval and chat render prompts with the model's own template; the training one is kept beside it
    saved = AutoTokenizer.from_pretrained(adapter)
    assert saved.chat_template == (TRL_TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")
    assert (adapter / "training_template.jinja").read_text(encoding="utf-8") == template


def test_a_template_nobody_covers_is_one_error_naming_its_family(family_models, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "llama31"
    shutil.copytree(family_models["llama3"], folder, symlinks=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # Llama 3.1's template (with its knowledge-date system header): TRL ships no training version of it.
    tokenizer.chat_template = (TRL_TEMPLATES / "llama3_1.jinja").read_text(encoding="utf-8")
    with pytest.raises(UserError) as caught:
        choose_template("auto", tokenizer)
    message = str(caught.value)
    assert "family: Llama 3" in message and "{% generation %}" in message and "template: chatml" in message
