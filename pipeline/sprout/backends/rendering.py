"""The exact text a local model reads, and where its answer ends: shared by the transformers and llama.cpp engines,
so both read the same prompts token for token (both tokenize with the model's Hugging Face tokenizer)."""

from __future__ import annotations

from sprout.backends.base import Prompt, is_prefill


def render(tokenizer, prompt: Prompt) -> str:
    """Chat prompts through the model's chat template; a raw prompt (completion mode) as is, after the BOS the
    tokenizer would add by itself."""
    if isinstance(prompt, str):
        return _bos(tokenizer) + prompt
    # A conversation that ends with an assistant turn is a prefill: the model continues that turn.
    prefill = is_prefill(prompt)
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=not prefill,
                                         continue_final_message=prefill)


def _bos(tokenizer) -> str:
    # Chat templates write their own BOS; a raw prompt gets the one the tokenizer would add by itself.
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return bos if adds_bos else ""


def end_token_ids(tokenizer, generation_config) -> set[int]:
    """Tokens that end an answer: the generation config's end-of-sequence ids and the tokenizer's."""
    ids = generation_config.eos_token_id if generation_config is not None else None
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    ids.add(tokenizer.eos_token_id)
    return ids


def stop_window(stops) -> int:
    """Trailing tokens enough to hold any stop string (a token is at least one character)."""
    return max((len(s) for s in stops), default=0) + 8


def hits_stop(tokenizer, tokens: list[int], stops, window: int) -> bool:
    return bool(stops) and any(s in tokenizer.decode(tokens[-window:]) for s in stops)


def answer_text(tokenizer, tokens: list[int], stops) -> str:
    """The answer as text: special tokens dropped, cut at the first stop string, trimmed."""
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    for stop in stops:
        if stop in text:
            text = text[: text.index(stop)]
    return text.strip()
