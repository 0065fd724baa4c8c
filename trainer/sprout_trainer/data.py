"""Training rows -> chat conversations -> token ids with an assistant mask, measured before anything trains.

Accepted inputs, one JSON object per line (or a JSON array): sprout records and Alpaca rows (user turn =
instruction, plus "\\n\\n" + input when there is one), `messages` rows (kept as they are, multi-turn too), and
`text` rows (plain text, e.g. the pretraining share of a mix: one assistant turn with no prompt, trained whole).
Rows become conversations through the pipeline's own reader (`sprout.datasets.chat_rows`, which `sprout export`
and `sprout mix` use too).

Tokenising here rather than inside TRL lets sprout see exactly what would be trained: an example whose prompt
already fills `max_length` keeps no trainable token, and TRL would drop it (or, packed, train on nothing) without a
word. So every example is measured, cut examples and dropped ones are counted with the reason, and the run stops
when too few keep an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sprout.core.errors import UserError
from sprout.datasets.chat_rows import to_messages
from sprout.io.dataset_io import read_rows

TEMPLATES = Path(__file__).with_name("templates")


def task_spec_rows(path: Path) -> list[tuple[int, dict]]:
    """A task spec's seed and positive examples as Alpaca rows: train on a task's hand-written examples directly."""
    from sprout.generators.pair_synthesis.task_spec import load_task_spec

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


def template_text(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


# sprout's own training templates, only for families TRL ships none for; `chatml` is the format a model without a
# chat template is trained in.
OWN_TEMPLATES = ("smollm2", "mistral", "chatml")
# How a template's family shows in its text: for the message when no training template covers it.
FAMILY_MARKS = (("<|start_header_id|>", "Llama 3"), ("<start_of_turn>", "Gemma"), ("<|turn>", "Gemma 4"),
                ("<|im_start|>", "ChatML (Qwen, SmolLM, Hermes...)"), ("[INST]", "Mistral / Llama 2"),
                ("<|user|>", "Phi-3 / Zephyr"), ("<|START_OF_TURN_TOKEN|>", "Cohere"), ("<｜User｜>", "DeepSeek"),
                ("<|channel|>", "gpt-oss"))
SAMPLE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
          {"role": "user", "content": "Two?"}, {"role": "assistant", "content": "Yes."}]


def template_family(template: str) -> str:
    return next((family for mark, family in FAMILY_MARKS if mark in template), "unknown")


def renders_like_own(tokenizer, candidate: str) -> bool:
    """The candidate renders every sample conversation exactly as the model's own template does (with and
    without a system turn, as a whole conversation and as a prompt awaiting the answer)."""
    checks = [(c, False) for c in (SAMPLE, [{"role": "system", "content": "Be brief."}, *SAMPLE])]
    checks += [(c[:-1], True) for c, _ in checks]  # each as a prompt awaiting its last answer
    compared = 0
    for conversation, generation_prompt in checks:
        try:  # a conversation the model's own template refuses (Gemma: no system turn) proves nothing either way
            own = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=generation_prompt)
        except Exception:  # noqa: BLE001 - templates raise whatever their authors chose (raise_exception)
            continue
        try:
            ours = tokenizer.apply_chat_template(conversation, tokenize=False, chat_template=candidate,
                                                 add_generation_prompt=generation_prompt)
        except Exception:  # noqa: BLE001
            return False
        if ours != own:
            return False
        compared += 1
    return compared > 0


def trl_training_template(tokenizer) -> str | None:
    """TRL's training version of the model's template (`{% generation %}` marks added), for the ~30 families TRL
    ships one for; None when TRL has none."""
    from jinja2 import TemplateError
    from trl.chat_template_utils import get_training_chat_template

    try:
        return get_training_chat_template(tokenizer)
    except (ValueError, TypeError, TemplateError):
        return None


def choose_template(name: str, tokenizer) -> str:
    """The training template (with `{% generation %}` markers). `auto`: the model's own when it has the markers,
    else TRL's training version of it, else sprout's own twin (SmolLM2, Mistral), each checked to render exactly
    like the model's template; ChatML for a model without a template."""
    if name != "auto":
        return template_text(name)
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):
        own = own.get("default")
    if not own:
        return template_text("chatml")
    if "{% generation %}" in own or "{%- generation %}" in own:
        return own
    candidates = [trl_training_template(tokenizer), *(template_text(twin) for twin in OWN_TEMPLATES)]
    for candidate in candidates:
        if candidate and renders_like_own(tokenizer, candidate):
            return candidate
    raise UserError(f"the model's chat template (family: {template_family(own)}) has no {{% generation %}} markers, "
                    "and neither TRL's training templates nor sprout's (SmolLM2, Mistral, ChatML) render like it, so "
                    "the answer tokens cannot be told apart. Fix: give the model a chat template with "
                    "{% generation %}...{% endgeneration %} around each assistant answer (and its end-of-turn "
                    "token), or set `template: chatml` to train it in ChatML instead of its own format.")


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
