"""Training rows -> chat conversations -> token ids with an assistant mask, measured before anything trains.

Accepted inputs, one JSON object per line (or a JSON array): sprout records and Alpaca rows (user turn =
instruction, plus "\\n\\n" + input when there is one), `messages` rows (kept as they are, multi-turn too), and
`text` rows (plain text, e.g. the pretraining share of a mix: one assistant turn with no prompt, trained whole).

Tokenising here rather than inside TRL lets sprout see exactly what would be trained: an example whose prompt
already fills `max_length` keeps no trainable token, and TRL would drop it (or, packed, train on nothing) without a
word. So every example is measured, cut examples and dropped ones are counted with the reason, and the run stops
when too few keep an answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from sprout.dataset_io import read_rows
from sprout.errors import UserError

TEMPLATES = Path(__file__).with_name("templates")
ROLES = {"system", "user", "assistant"}


def to_messages(row: object, system_prompt: str | None = None) -> list[dict[str, str]]:
    """One row in any accepted form -> chat messages. Raises ValueError saying what is wrong with the row."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                for m in messages):
            raise ValueError("messages: need a list of {role: system|user|assistant, content: str}")
        if not any(m["role"] == "assistant" for m in messages):
            raise ValueError("messages: no assistant turn to train on")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    if "instruction" in row:
        instruction, extra, output = row.get("instruction"), row.get("input") or "", row.get("output")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("instruction: missing or empty")
        if not isinstance(output, str) or not output.strip():
            raise ValueError("output: missing or empty (nothing to train on)")
        user = f"{instruction}\n\n{extra}" if str(extra).strip() else instruction
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return [*system, {"role": "user", "content": user}, {"role": "assistant", "content": output}]
    if "text" in row:
        if not isinstance(row["text"], str) or not row["text"].strip():
            raise ValueError("text: missing or empty")
        return [{"role": "assistant", "content": row["text"]}]
    raise ValueError(f"no `instruction`, `messages` or `text` field (has: {sorted(row)})")


def task_spec_rows(path: Path) -> list[tuple[int, dict]]:
    """A task spec's seed and positive examples as Alpaca rows: train on a task's hand-written examples directly."""
    from sprout.task_spec import load_task_spec

    spec = load_task_spec(path)
    examples = [*spec.examples, *spec.positive_examples]
    return [(0, {"instruction": spec.instruction, "input": e.input, "output": e.output}) for e in examples]


def read_conversations(path: Path, system_prompt: str | None = None) -> list[list[dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such training file. Fix: run `make data` first, or pass --data FILE.")
    rows = task_spec_rows(path) if path.suffix in (".yaml", ".yml") else read_rows(path)[1]
    conversations, problems = [], []
    for line, row in rows:
        try:
            conversations.append(to_messages(row, system_prompt))
        except ValueError as exc:
            problems.append(f"{path}:{line}: {exc}")
    if problems:
        raise UserError(f"{len(problems)} unusable row(s) in {path}; nothing was trained:", problems[:50])
    if not conversations:
        raise UserError(f"{path}: no rows to train on.")
    return conversations


def split(conversations: list, share: float, seed: int) -> tuple[list, list]:
    """Seeded shuffle, then the last `share` (at least one row when share > 0 and there are 2+) for validation."""
    order = list(range(len(conversations)))
    n_val = min(len(order) - 1, max(1, round(len(order) * share))) if share > 0 and len(order) > 1 else 0
    if n_val:  # without a validation split the file order stays (the trainer's sampler shuffles anyway)
        random.Random(f"{seed}:validation").shuffle(order)
    train = [conversations[i] for i in order[: len(order) - n_val]]
    return train, [conversations[i] for i in order[len(order) - n_val:]]


def template_text(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def choose_template(name: str, tokenizer) -> str:
    """The training template (with `{% generation %}` markers). `auto`: the shipped twin that renders exactly like
    the model's own template, or ChatML for a model without one."""
    if name != "auto":
        return template_text(name)
    own = getattr(tokenizer, "chat_template", None)
    if not own:
        return template_text("chatml")
    if "{% generation %}" in own:
        return own
    sample = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
              {"role": "user", "content": "Two?"}, {"role": "assistant", "content": "Yes."}]
    for twin in ("smollm2", "chatml", "zephyr", "tulu"):
        if all(tokenizer.apply_chat_template(c, tokenize=False, chat_template=template_text(twin))
               == tokenizer.apply_chat_template(c, tokenize=False)
               for c in (sample, [{"role": "system", "content": "Be brief."}, *sample])):
            return template_text(twin)
    raise UserError("the model's chat template has no {% generation %} markers and matches none of sprout's "
                    "training templates, so assistant tokens cannot be told apart. Fix: set `template:` to "
                    "chatml, zephyr or tulu (the model is then trained in that format).")


@dataclass
class Tokenized:
    rows: list[dict] = field(default_factory=list)  # input_ids + assistant_masks, already cut to max_length
    whole: int = 0
    cut: int = 0  # some answer tokens fell past max_length
    dropped: int = 0  # no answer token left: the prompt alone fills max_length
    examples: list[str] = field(default_factory=list)  # a few dropped/cut ones, for the report

    @property
    def kept_share(self) -> float:
        total = self.whole + self.cut + self.dropped
        return (self.whole + self.cut) / total if total else 0.0

    def summary(self) -> dict:
        return {"whole": self.whole, "cut": self.cut, "dropped": self.dropped, "kept_share": round(self.kept_share, 4),
                "examples": self.examples}


def last_turn_only(mask: list[int]) -> list[int]:
    """Keep only the last run of 1s (the final assistant turn)."""
    end = len(mask) - 1 - mask[::-1].index(1) if 1 in mask else -1
    start = end
    while start > 0 and mask[start - 1] == 1:
        start -= 1
    return [1 if start <= i <= end else 0 for i in range(len(mask))]


def tokenize(conversations, tokenizer, template: str, max_length: int, last_only: bool) -> Tokenized:
    out = Tokenized()
    for conversation in conversations:
        encoded = tokenizer.apply_chat_template(conversation, chat_template=template, tokenize=True,
                                                return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(encoded["input_ids"]), list(encoded["assistant_masks"])
        if last_only:
            mask = last_turn_only(mask)
        trainable, kept = sum(mask), sum(mask[:max_length])
        if kept == 0:
            out.dropped += 1
            why = f"dropped: {len(ids)} tokens, the prompt fills max_length={max_length}"
        elif kept < trainable:
            out.cut += 1
            why = f"cut: {trainable - kept} of {trainable} answer tokens fall past max_length={max_length}"
        else:
            out.whole += 1
            why = None
        if why and len(out.examples) < 5:
            out.examples.append(f"{why}: {conversation[-1]['content'][:80]!r}")
        if kept:
            out.rows.append({"input_ids": ids[:max_length], "assistant_masks": mask[:max_length]})
    return out
