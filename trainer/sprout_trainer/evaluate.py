"""`sprout eval`, `merge` and `chat`: load an adapter on its base model, compare base and tuned, fold it in, try it.

Eval runs both models greedily on a held-out set (the adapter switched off gives the base): exact-match accuracy
and per-label precision/recall when the references are labels, ROUGE-L F against the references otherwise, the
loss on the reference answers for both, and a side-by-side table of outputs. JSON for machines, Markdown for people.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from sprout.backends.base import Sampling
from sprout.backends.devices import compute_dtype, resolve_device
from sprout.backends.local import LocalBackend
from sprout.core.errors import UserError
from sprout.core.parsing import match_label
from sprout.datasets.chat_rows import to_messages
from sprout.io.dataset_io import read_rows
from sprout.io.jsonl import atomic_directory, atomic_write
from sprout_trainer.data import tokenize
from sprout_trainer.train import ADAPTER_INFO

MAX_LABELS = 10  # references with at most this many distinct short values are treated as labels


def load_tuned(adapter: Path, base: str | None = None, log=print, device: str = "auto"):
    """(PEFT model, tokenizer with the model's own chat template, training template) on `device` (auto: CUDA in
    bf16 when there is one, else the CPU in fp32); the base comes from the adapter's sprout record unless `base`
    is given."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sprout.backends.model_store import resolve_model
    from sprout_trainer.train import quiet_libraries

    quiet_libraries()
    adapter = Path(adapter)
    info_path = adapter / ADAPTER_INFO
    if not info_path.is_file():
        raise UserError(f"{adapter}: not a sprout adapter folder (no {ADAPTER_INFO}). Fix: pass the `adapter` folder "
                        "of a `sprout train` run, e.g. out/train/adapter.")
    model_dir = resolve_model(base or json.loads(info_path.read_text())["model"], log=log)
    device = resolve_device(device)
    # Prompts are rendered with the model's own chat template (as saved with the adapter, the base model's); the
    # training template renders the same text and adds the assistant marks the answer loss needs.
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    training_template = (adapter / "training_template.jinja").read_text(encoding="utf-8")
    if not tokenizer.chat_template:  # a model without one was trained in the template sprout chose for it
        tokenizer.chat_template = training_template
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=compute_dtype(device)).to(device)
    return PeftModel.from_pretrained(model, adapter).eval(), tokenizer, training_template


def read_eval_rows(path: Path, limit: int | None) -> list[tuple[list[dict], str]]:
    """(prompt messages, reference answer) per row: the last assistant turn is the reference."""
    _, rows = read_rows(path)
    pairs, problems = [], []
    for line, row in rows[:limit]:
        try:
            messages = to_messages(row)
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
            continue
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            problems.append(f"{path}:{line}: needs a prompt and a final assistant answer")
            continue
        pairs.append((messages[:-1], messages[-1]["content"].strip()))
    if problems:
        raise UserError(f"{len(problems)} unusable row(s) in {path}:", problems[:50])
    return pairs


def labels_of(references: list[str]) -> list[str] | None:
    distinct = sorted(set(references))
    short = all(len(r.split()) <= 3 for r in distinct)
    return distinct if short and len(distinct) <= MAX_LABELS and len(references) > len(distinct) else None


def classification_scores(predictions: list[str], references: list[str], labels: list[str]) -> dict:
    picked = [match_label(p, labels) for p in predictions]
    correct = sum(p == r for p, r in zip(picked, references, strict=True))
    per_label = {}
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(picked, references, strict=True))
        predicted, actual = picked.count(label), references.count(label)
        per_label[label] = {"precision": round(tp / predicted, 4) if predicted else None,
                            "recall": round(tp / actual, 4) if actual else None, "predicted": predicted}
    return {"accuracy": round(correct / len(references), 4), "per_label": per_label,
            "unparseable": sum(p is None for p in picked)}


def rouge_scores(predictions: list[str], references: list[str]) -> dict:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    values = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]
    return {"rouge_l": round(sum(values) / len(values), 4)}


def answer_loss(model, tokenizer, pairs, training_template: str) -> float:
    """Mean loss per reference-answer token (prompt tokens masked), the same way training counts it."""
    import torch

    rows = tokenize([[*prompt, {"role": "assistant", "content": ref}] for prompt, ref in pairs], tokenizer,
                    training_template, max_length=4096, last_only=True).rows
    device = next(model.parameters()).device
    total = count = 0.0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["input_ids"]], device=device)
            labels = torch.where(torch.tensor([row["assistant_masks"]], device=device) == 1, ids, -100)
            n = int((labels[0, 1:] != -100).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return round(total / count, 4) if count else math.nan


def run_eval(adapter: Path, data: Path, out: Path, limit: int | None = None, max_tokens: int = 64,
             base: str | None = None, samples: int = 20, log=print, device: str = "auto") -> dict:
    pairs = read_eval_rows(data, limit)
    if not pairs:
        raise UserError(f"{data}: no rows to evaluate.")
    model, tokenizer, training_template = load_tuned(adapter, base, log, device)
    references = [ref for _, ref in pairs]
    labels = labels_of(references)
    backend = LocalBackend.from_model(model, tokenizer, model_id=f"sprout-eval:{Path(adapter).name}")
    sampling = Sampling(temperature=0.0, max_tokens=max_tokens)
    results = {}
    for name in ("base", "tuned"):
        log(f"eval: generating with the {name} model on {len(pairs)} rows...")
        if name == "base":
            with model.disable_adapter():
                outputs = [c[0].text for c in backend.generate([p for p, _ in pairs], sampling)]
                loss = answer_loss(model, tokenizer, pairs, training_template)
        else:
            outputs = [c[0].text for c in backend.generate([p for p, _ in pairs], sampling)]
            loss = answer_loss(model, tokenizer, pairs, training_template)
        scores = classification_scores(outputs, references, labels) if labels else rouge_scores(outputs, references)
        results[name] = {**scores, "answer_loss": loss, "outputs": outputs}
    report = {"adapter": str(adapter), "data": str(data), "rows": len(pairs),
              "task": "classification" if labels else "generation", "labels": labels,
              "label_counts": dict(Counter(references)) if labels else None,
              **{name: {k: v for k, v in r.items() if k != "outputs"} for name, r in results.items()},
              "samples": [{"prompt": prompt[-1]["content"], "reference": ref, "base": results["base"]["outputs"][i],
                           "tuned": results["tuned"]["outputs"][i]} for i, (prompt, ref) in enumerate(pairs[:samples])]}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "eval.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write(out / "eval.md", eval_markdown(report))
    return report


def _cell(text: str, width: int = 160, tail: bool = False) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    if len(text) <= width:
        return text
    return "…" + text[-width:] if tail else text[:width] + "…"


def eval_markdown(report: dict) -> str:
    metric = "accuracy" if report["task"] == "classification" else "rouge_l"
    lines = [f"# sprout eval: `{report['adapter']}` on `{report['data']}` ({report['rows']} rows, {report['task']})",
             "", f"| model | {metric} | answer loss |" + (" unparseable |" if metric == "accuracy" else ""),
             "| --- | ---: | ---: |" + (" ---: |" if metric == "accuracy" else "")]
    for name in ("base", "tuned"):
        row = report[name]
        lines.append(f"| {name} | {row[metric]} | {row['answer_loss']} |"
                     + (f" {row['unparseable']} |" if metric == "accuracy" else ""))
    if report["labels"]:
        lines += ["", "| label | base precision | base recall | tuned precision | tuned recall |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for label in report["labels"]:
            b, t = report["base"]["per_label"][label], report["tuned"]["per_label"][label]
            lines.append(f"| {_cell(label)} | {b['precision']} | {b['recall']} | {t['precision']} | {t['recall']} |")
    lines += ["", "## Side by side", "", "| prompt | reference | base | tuned |", "| --- | --- | --- | --- |"]
    # The prompt's end is shown: with a fixed instruction, the input at the end is what differs between rows.
    lines += [f"| {_cell(s['prompt'], tail=True)} | {_cell(s['reference'])} | {_cell(s['base'])} | "
              f"{_cell(s['tuned'])} |" for s in report["samples"]]
    return "\n".join(lines) + "\n"


def merge_adapter(adapter: Path, out: Path, base: str | None = None, log=print, device: str = "auto") -> Path:
    """Fold the LoRA weights into the base: a standalone model folder that loads with plain transformers (and its
    own chat template)."""
    model, tokenizer, _ = load_tuned(adapter, base, log, device)
    merged = model.merge_and_unload()
    with atomic_directory(out) as staging:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return out


def chat(adapter: Path, prompt: str, max_tokens: int = 256, base: str | None = None, log=print,
         device: str = "auto") -> str:
    model, tokenizer, _ = load_tuned(adapter, base, log, device)
    backend = LocalBackend.from_model(model, tokenizer, model_id="sprout-chat")
    [[reply]] = backend.generate([[{"role": "user", "content": prompt}]], Sampling(temperature=0.0,
                                                                                   max_tokens=max_tokens))
    return reply.text
