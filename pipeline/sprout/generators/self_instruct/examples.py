"""The seed tasks Self-Instruct shows: enough of them for its prompts, and worked examples of every kind.

A user's seed file may lack a kind of task entirely (an Alpaca file has no classification tasks): the classification
judge and the instance prompts then borrow worked examples of that kind from sprout's own shipped seeds, and say so.
"""

from __future__ import annotations

from pathlib import Path

from sprout.core.errors import UserError
from sprout.core.seeds import load_seeds
from sprout.generators.self_instruct.config import SelfInstructConfig

SHIPPED_SEEDS = Path(__file__).resolve().parents[2] / "assets" / "seeds" / "general.jsonl"


def check_seed_counts(seeds, si: SelfInstructConfig, paths) -> None:
    """Self-Instruct shows `in_context` of the user's seed tasks per proposal prompt: a seed set too small for that
    is an error now, before anything is written. (Worked examples of a kind the seeds lack are borrowed instead:
    see worked_examples.)"""
    if len(seeds) < si.in_context:
        files = ", ".join(str(p) for p in paths)
        raise UserError(f"{files}: too few seeds for Self-Instruct's prompts: {len(seeds)} seed tasks, but "
                        f"generators.self_instruct.in_context is {si.in_context}. Fix: add seed tasks, or lower "
                        "that key.")


def worked_examples(seeds, si: SelfInstructConfig, log) -> list:
    """The tasks shown as worked examples to the classification judge and the instance prompts: the user's seeds,
    topped up from sprout's own shipped seeds for a kind they have too few of (an Alpaca seed file has no
    classification tasks at all). The user's seeds stay the only ones shown in proposal prompts and in the dedup
    pool."""
    needed = {True: max(si.instance_examples, si.classify_examples // 2),
              False: max(si.instance_examples, si.classify_examples - si.classify_examples // 2)}
    examples = list(seeds)
    for flag, name in ((True, "classification"), (False, "non-classification")):
        have = [s for s in seeds if s.is_classification == flag]
        if len(have) >= needed[flag]:
            continue
        shipped = [s for s in load_seeds([SHIPPED_SEEDS]) if s.is_classification == flag and s not in seeds]
        borrowed = shipped[: needed[flag] - len(have)]
        examples += borrowed
        log(f"seeds: {len(have)} {name} seed tasks; {len(borrowed)} of sprout's own ({SHIPPED_SEEDS.name}) are "
            f"borrowed as worked examples for the classification judge and the {name} instance prompts.")
    return examples
