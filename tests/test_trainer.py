"""The LoRA trainer on a tiny random Llama (2 layers) with SmolLM2's tokenizer: masks, packing, truncation, LoRA
updates, save/reload/merge, config errors, and a stock TRL SFTTrainer on sprout's `messages` rows."""

import json

import pytest
import torch
from sprout_trainer.config import TrainConfig
from sprout_trainer.data import choose_template, last_turn_only, template_text, tokenize
from sprout_trainer.train import prepare, run_train

from sprout.backends.model_store import resolve_model
from sprout.core.errors import UserError
from sprout.datasets.chat_rows import to_messages
from tests.conftest import REPO, save_tiny_llama, write

CONVERSATIONS = [
    [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": "Yes."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Spain?"},
     {"role": "assistant", "content": "Madrid, since 1561."}],
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("embedded", log=lambda *_: None))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tokenizer)


def rows_file(tmp_path, n=24):
    rows = [{"instruction": f"Say the number {i} in words.", "input": "" if i % 2 else f"Number: {i}",
             "output": f"The number is {i}."} for i in range(n)]
    return write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def config(tmp_path, tiny_model, **overrides):
    return TrainConfig(**{"model": str(tiny_model), "data": rows_file(tmp_path), "out_dir": tmp_path / "run",
                          "max_steps": 3, "batch_size": 4, "logging_steps": 1, "threads": 2, **overrides})


def test_training_template_renders_exactly_like_smollm2s_own(tokenizer):
    for conversation in CONVERSATIONS:
        for generation_prompt in (False, True):
            prompt = conversation if not generation_prompt else conversation[:-1]
            ours = tokenizer.apply_chat_template(prompt, tokenize=False, chat_template=template_text("smollm2"),
                                                 add_generation_prompt=generation_prompt)
            assert ours == tokenizer.apply_chat_template(prompt, tokenize=False,
                                                         add_generation_prompt=generation_prompt)
    assert choose_template("auto", tokenizer) == template_text("smollm2")


def ids_of(tokenizer, conversation):
    return tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]


def expected_answer_ids(tokenizer, conversation, end="<|im_end|>"):
    """Independently of the template: the token ids of every assistant answer followed by its end marker."""
    ids = []
    for message in conversation:
        if message["role"] == "assistant":
            ids += tokenizer(message["content"] + end, add_special_tokens=False)["input_ids"]
    return ids


def test_collated_batch_trains_only_assistant_tokens_and_their_end_marker(tmp_path, tiny_model, tokenizer):
    data = write(tmp_path / "chat.jsonl", "".join(json.dumps({"messages": c}) + "\n" for c in CONVERSATIONS))
    run = prepare(config(tmp_path, tiny_model, data=data, validation_share=0), tmp_path / "ck")
    batch = next(iter(run.trainer.get_train_dataloader()))
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        real = ids[mask.bool()].tolist()
        conversation = next(c for c in CONVERSATIONS if ids_of(tokenizer, c) == real)
        trained = labels[labels != -100].tolist()
        assert trained == expected_answer_ids(tokenizer, conversation)
        assert torch.equal(labels[labels != -100], ids[labels != -100])
        assert tokenizer.convert_tokens_to_ids("<|im_end|>") in trained  # the model learns to stop


def test_last_assistant_only_masks_earlier_answers(tokenizer):
    rows = tokenize([CONVERSATIONS[1]], tokenizer, template_text("smollm2"), 512, last_only=True).rows
    trained = [i for i, m in zip(rows[0]["input_ids"], rows[0]["assistant_masks"], strict=True) if m]
    assert trained == expected_answer_ids(tokenizer, CONVERSATIONS[1][-1:])
    assert last_turn_only([0, 1, 1, 0, 1, 1, 0]) == [0, 0, 0, 0, 1, 1, 0]


def test_a_mistral_style_model_is_trained_in_sprouts_own_mistral_twin(tokenizer):
    """TRL ships no Mistral training template: sprout's `[INST] ... [/INST]` twin is chosen when it renders exactly
    like the model's own template, and marks each answer with its end-of-sequence token."""
    import copy

    mistral = copy.deepcopy(tokenizer)
    mistral.chat_template = template_text("mistral").replace("{% generation %}", "").replace("{% endgeneration %}",
                                                                                             "")
    assert choose_template("auto", mistral) == template_text("mistral")
    rows = tokenize([CONVERSATIONS[1]], mistral, template_text("mistral"), 512, last_only=False).rows
    trained = [i for i, m in zip(rows[0]["input_ids"], rows[0]["assistant_masks"], strict=True) if m]
    assert trained == expected_answer_ids(mistral, CONVERSATIONS[1], end=mistral.eos_token)
    text = mistral.decode(rows[0]["input_ids"])
    assert "[INST] Answer briefly.\n\nCapital of France? [/INST]Paris." in text


def test_rows_of_every_kind_become_messages():
    record = {"instruction": "Sum them.", "input": "2 3", "output": "5", "lineage": {"generator": "x"}}
    assert to_messages(record, system_prompt="Be exact.") == [
        {"role": "system", "content": "Be exact."}, {"role": "user", "content": "Sum them.\n\n2 3"},
        {"role": "assistant", "content": "5"}]
    assert to_messages({"text": "Plain prose."}) == [{"role": "assistant", "content": "Plain prose."}]
    assert to_messages({"messages": CONVERSATIONS[1]}) == CONVERSATIONS[1]
    for bad, message in [({"output": "x"}, "no `instruction`"), ({"instruction": "x", "output": ""}, "output"),
                         ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn")]:
        with pytest.raises(ValueError, match=message):
            to_messages(bad)


def test_truncation_is_measured_and_too_few_trainable_examples_stop_the_run(tmp_path, tiny_model, tokenizer):
    long_prompt = [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "Done."}]
    rows = tokenize([*CONVERSATIONS, long_prompt], tokenizer, template_text("smollm2"), 40, last_only=False)
    # whole: the short chat; cut: the second answer of the long chat falls past 40; dropped: the prompt fills 40
    assert (rows.whole, rows.cut, rows.dropped) == (1, 1, 1)
    assert len(rows.rows) == 2 and all(len(r["input_ids"]) <= 40 for r in rows.rows)
    with pytest.raises(UserError) as error:
        prepare(config(tmp_path, tiny_model, max_length=30), tmp_path / "ck")
    assert "keep a trainable answer token within max_length=30" in str(error.value)
    assert not (tmp_path / "run" / "adapter").exists()


def test_packed_loss_equals_unpacked_loss(tmp_path, tiny_model):
    losses = {}
    for packing in (False, True):
        run = prepare(config(tmp_path, tiny_model, packing=packing, batch_size=64, validation_share=0,
                             out_dir=tmp_path / f"run{packing}"), tmp_path / "ck")
        batch = next(iter(run.trainer.get_train_dataloader()))
        model = run.trainer.model.eval()
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        labels = batch["labels"][:, 1:]
        token_loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(),
                                                       ignore_index=-100, reduction="sum")
        losses[packing] = (float(token_loss) / int((labels != -100).sum()), batch["input_ids"].shape[0])
    assert losses[True][1] < losses[False][1]  # the rows really were packed together
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-4)


def test_training_changes_lora_weights_and_the_adapter_reloads_and_merges(tmp_path, tiny_model, tokenizer):
    from peft import PeftModel
    from sprout_trainer.evaluate import load_tuned, merge_adapter
    from transformers import AutoModelForCausalLM

    summary = run_train(config(tmp_path, tiny_model, learning_rate=5e-3), log=lambda *_: None)
    out = tmp_path / "run"
    assert summary["steps"] == 3 and summary["tokens_per_second"] > 0 and summary["peak_rss_mb"] > 0
    assert (out / "loss.png").stat().st_size > 0
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged if "loss" in row] == [1, 2, 3]
    assert any("eval_loss" in row for row in logged)  # the validation split is evaluated too
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == tiny_model.name  # no absolute path of this machine
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out / "adapter")
    lora_b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero: training moved it
    ids = torch.tensor([ids_of(tokenizer, CONVERSATIONS[0])])
    assert not torch.allclose(base(ids).logits, tuned(ids).logits)
    reloaded, _, _ = load_tuned(out / "adapter", log=lambda *_: None)
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, tuned(ids).logits, atol=1e-5)
        merged_dir = merge_adapter(out / "adapter", tmp_path / "merged", log=lambda *_: None)
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)
        assert torch.allclose(merged(ids).logits, tuned(ids).logits, atol=1e-4)
        greedy = {name: m.generate(ids, max_new_tokens=12, do_sample=False)[0].tolist()
                  for name, m in (("adapter", tuned), ("merged", merged))}
    assert greedy["adapter"] == greedy["merged"]


@pytest.mark.parametrize("overrides, message", [
    ({"device": "cpu", "precision": "bf16"}, "device cpu trains in fp32 only"),
    ({"device": "cpu", "qlora": True}, "device cpu trains in fp32 only"),
])
def test_cpu_refuses_bf16_and_qlora(tmp_path, tiny_model, overrides, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, tiny_model, **overrides)


def test_unknown_key_and_missing_data_are_user_errors(tmp_path):
    from sprout.config.loader import load_config

    path = write(tmp_path / "t.yaml", "epochs: 1\nlearning_rat: 0.1\n")
    with pytest.raises(UserError, match=r"t.yaml:2: unknown key 'learning_rat'"):
        load_config(path, model=TrainConfig)
    path = write(tmp_path / "old.yaml", "max_seq_length: 256\nwarmup_ratio: 0.1\n")
    with pytest.raises(UserError, match="`max_seq_length` is the trainer-argument name: use `max_length`"):
        load_config(path, model=TrainConfig)
    from sprout_trainer.data import read_conversations

    with pytest.raises(UserError, match="run `make data` first"):
        read_conversations(tmp_path / "missing.jsonl")


def test_stock_trl_sfttrainer_trains_on_sprout_messages_rows(tmp_path, tiny_model):
    """Interop: no sprout code in the loop, only the `messages` JSONL sprout writes for other trainers."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [{"messages": to_messages(json.loads(line))} for line in rows_file(tmp_path).read_text().splitlines()]
    path = write(tmp_path / "messages.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    dataset = load_dataset("json", data_files=str(path), split="train")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model),
                         processing_class=AutoTokenizer.from_pretrained(tiny_model), train_dataset=dataset,
                         args=SFTConfig(output_dir=str(tmp_path / "stock"), max_steps=2, per_device_train_batch_size=4,
                                        report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True))
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0


def test_shipped_train_config_is_valid():
    from sprout.config.loader import load_config

    cfg = load_config(REPO / "configs" / "train.yaml", model=TrainConfig)
    assert cfg.model == "embedded" and cfg.precision == "auto"


@pytest.mark.slow
def test_runs_unchanged_under_accelerate_launch_with_two_cpu_processes(tmp_path, tiny_model):
    import subprocess
    import sys

    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sprout", "train",
               "--config", str(REPO / "configs" / "train.yaml"), "--data", str(rows_file(tmp_path)), "--out", str(out),
               "--set", f"model={tiny_model}", "--set", "max_steps=2", "--set", "batch_size=2", "--set", "threads=1"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and (out / "adapter" / "adapter_model.safetensors").exists()
    assert result.stdout.count("trained ") == 1  # one process reports; the other only trains


def lora_weights(adapter) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def test_init_adapter_goes_on_training_an_earlier_adapter_with_its_own_shape(tmp_path, tiny_model):
    first = run_train(config(tmp_path, tiny_model, learning_rate=5e-3, out_dir=tmp_path / "one"), log=lambda *_: None)
    said = []
    second = run_train(config(tmp_path, tiny_model, learning_rate=5e-3, out_dir=tmp_path / "two",
                              init_adapter=tmp_path / "one" / "adapter", lora={"r": 4}), log=said.append)
    assert first["steps"] == second["steps"] == 3
    assert any("continuing adapter" in str(line) and "r 16" in str(line) for line in said)
    saved = json.loads((tmp_path / "two" / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == tiny_model.name and saved["r"] == 16
    before, after = lora_weights(tmp_path / "one" / "adapter"), lora_weights(tmp_path / "two" / "adapter")
    assert before.keys() == after.keys()  # the same LoRA shape (r 16 from the first run; the config's r 4 unused)
    assert all(before[k].shape == after[k].shape for k in before)
    moved = [k for k in before if "lora_B" in k and not torch.equal(before[k], after[k])]
    assert moved and all(before[k].abs().sum() > 0 for k in moved)  # trained further from non-zero B, not afresh
    # A fresh run with the same seed and data ends elsewhere: the second run really started from the first.
    fresh = run_train(config(tmp_path, tiny_model, learning_rate=5e-3, out_dir=tmp_path / "fresh"), log=lambda *_: None)
    assert fresh["steps"] == 3
    again = lora_weights(tmp_path / "fresh" / "adapter")
    assert any(not torch.allclose(again[k], after[k]) for k in moved)


def test_init_adapter_must_be_a_sprout_adapter_of_the_same_model(tmp_path, tiny_model):
    with pytest.raises(UserError, match="not a sprout adapter folder"):
        run_train(config(tmp_path, tiny_model, init_adapter=tmp_path), log=lambda *_: None)
    adapter = write(tmp_path / "other" / "adapter" / "sprout_adapter.json", json.dumps({"model": "embedded"})).parent
    with pytest.raises(UserError, match="was trained on model 'embedded'"):
        run_train(config(tmp_path, tiny_model, init_adapter=adapter), log=lambda *_: None)


def test_stages_of_a_mix_train_in_order_each_from_the_last_adapter(tmp_path, tiny_model):
    from sprout_trainer.stages import run_stages

    from sprout.datasets.mix_config import load_mix_config
    from sprout.datasets.mixing import run_mix

    rows_file(tmp_path, n=40)
    mix = write(tmp_path / "mix.yaml", f"""out_dir: {tmp_path / 'mix'}
sources:
  numbers: {{path: {tmp_path / 'train.jsonl'}}}
stages:
  - {{name: first, size: 16, shares: {{numbers: 1}}}}
  - {{name: second, size: 12, shares: {{numbers: 1}}, keep_from_previous: 0.25, replace: true}}
""")
    run_mix(*load_mix_config(mix, []))
    said = []
    result = run_stages(config(tmp_path, tiny_model, out_dir=tmp_path / "staged"), tmp_path / "mix", log=said.append)
    assert [s["stage"] for s in result["stages"]] == ["first", "second"]
    assert [s["examples"] + s["validation_examples"] for s in result["stages"]] == [16, 12]
    first, second = (tmp_path / "staged" / name for name in ("stage-1-first", "stage-2-second"))
    assert result["adapter"] == str(second / "adapter") and (first / "adapter").is_dir()
    assert any(f"from {first / 'adapter'}" in str(line) for line in said)
    assert [s["init_adapter"] for s in result["stages"]] == [None, str(first / "adapter")]
    recorded = json.loads((tmp_path / "staged" / "stages.json").read_text())
    assert recorded["stages"][1]["data"].endswith("stage-2-second.jsonl")
