"""Scaffold words of the Evol-Instruct prompts, derived from the prompt files themselves so the list cannot drift.

An evolved instruction that echoes the prompt that made it (its word limit, its request to answer with the new
instruction only, "given prompt") copied the scaffold, not the task: the paper's elimination rule 4. The phrases are
every `#Marker#` and every quoted phrase of an evolving prompt, and every clause of it (text between . : ; ! ? and
line breaks inside one paragraph) of four words or more, read from the prompt rendered with an empty instruction.
"""

from __future__ import annotations

import re

from sprout.core.prompts import Prompt
from sprout.filters.rules import scaffold_text

MIN_CLAUSE_WORDS = 4
_MARKER = re.compile(r"#[^#\n]{2,40}#")
_QUOTED = re.compile(r"[\"“]([^\"”\n]{3,60})[\"”]")
_CLAUSE_END = re.compile(r"[.:;!?()]|\n\s*\n")


def scaffold_phrases(prompts: list[Prompt]) -> list[str]:
    """The normalized scaffold phrases of these prompts, each once, in the order found."""
    found: dict[str, None] = {}
    for prompt in prompts:
        texts = [message["content"] for message in prompt.render(instruction="")]
        if prompt.completion is not None:
            texts.append(prompt.build("completion", instruction=""))
        for text in texts:
            for phrase in [*_MARKER.findall(text), *_QUOTED.findall(text)]:
                found.setdefault(scaffold_text(phrase))
            for clause in _CLAUSE_END.split(text):
                clause = scaffold_text(clause).strip(" ,")
                if len(clause.split()) >= MIN_CLAUSE_WORDS:
                    found.setdefault(clause)
    return [phrase for phrase in found if phrase]
