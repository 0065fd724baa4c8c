"""Dataset rows as chat conversations, and the seeded train/validation split: one definition for every reader.

A row is a sprout record or an Alpaca row (user turn = instruction, plus "\\n\\n" + input when there is one), a
`messages` row (kept as it is, multi-turn too) or a `text` row (plain text, e.g. the pretraining share of a mix:
one assistant turn with no prompt). `sprout export` and `sprout mix` read rows with these, and so does the trainer
(`sprout_trainer` imports them from here), so whatever export writes or mix accepts is exactly what trains.
"""

from __future__ import annotations

import random

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


def split(conversations: list, share: float, seed: int) -> tuple[list, list]:
    """Seeded shuffle, then the last `share` (at least one row when share > 0 and there are 2+) for validation."""
    order = list(range(len(conversations)))
    n_val = min(len(order) - 1, max(1, round(len(order) * share))) if share > 0 and len(order) > 1 else 0
    if n_val:  # without a validation split the file order stays (the trainer's sampler shuffles anyway)
        random.Random(f"{seed}:validation").shuffle(order)
    train = [conversations[i] for i in order[: len(order) - n_val]]
    return train, [conversations[i] for i in order[len(order) - n_val:]]
