"""Near-duplicate rows (filters.dedup_on, sprout dedup --on): a row is a near-duplicate only when EACH compared field
is (ROUGE-L F > threshold; an empty field matches only an empty one), decided exactly as pairwise rouge-score."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from sprout.config.filters import FilterConfig
from sprout.core.records import Lineage, Record
from sprout.filters.build import build_stage
from sprout.filters.dedup_rules import RougeDedup
from sprout.filters.row_index import FIELDS, RowRougeIndex

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
LINEAGE = Lineage(generator="input")


def ref_field(kept: str, new: str, threshold: float) -> bool:
    if not kept.strip() or not new.strip():
        return not kept.strip() and not new.strip()
    return SCORER.score(kept, new)["rougeL"].fmeasure > threshold


def ref_greedy(rows: list[tuple[str, ...]], threshold: float) -> list[int]:
    """Pairwise rouge-score, field by field, greedy in order: the definition the index must meet exactly."""
    kept: list[int] = []
    for k, row in enumerate(rows):
        if not any(all(ref_field(a, b, threshold) for a, b in zip(rows[j], row, strict=True)) for j in kept):
            kept.append(k)
    return kept


def index_greedy(rows: list[tuple[str, ...]], threshold: float) -> list[int]:
    index, kept = RowRougeIndex(len(rows[0]) if rows else 1), []
    for k, row in enumerate(rows):
        if index.exceeds(row, threshold) is None:
            index.add(row)
            kept.append(k)
    return kept


WORD = st.sampled_from(["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "42", "far", "!", "Cat"])
FIELD = st.one_of(st.just(""), st.lists(WORD, min_size=1, max_size=9).map(" ".join))
SHARED = "Classify the topic of the news article below as World, Sports, Business or Sci/Tech."


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([SHARED, "Name the animal.", ""]), FIELD, FIELD), max_size=14),
       st.sampled_from(list(FIELDS)), st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9]))
def test_row_index_decides_as_pairwise_rouge_score(rows, on, threshold):
    """Rows that share one instruction, blank fields, one-word variants: the index keeps what the definition keeps."""
    picked = [tuple(row[("instruction", "input", "output").index(f)] for f in FIELDS[on]) for row in rows]
    assert index_greedy(picked, threshold) == ref_greedy(picked, threshold)


def test_a_matched_row_reports_every_field_score_and_the_closest_row():
    index = RowRougeIndex(3)
    index.add((SHARED, "The bank raised rates by half a point on Tuesday.", "Business"))
    index.add((SHARED, "The club signed a striker from Lisbon for a record fee.", "Sports"))
    hit = index.exceeds((SHARED, "The bank raised rates by half a point on Wednesday.", "Business"), 0.7)
    assert hit is not None
    (instruction, inp, out), row = hit
    assert row == 0 and instruction == 1.0 and out == 1.0
    assert inp == SCORER.score("The bank raised rates by half a point on Tuesday.",
                               "The bank raised rates by half a point on Wednesday.")["rougeL"].fmeasure
    assert index.exceeds((SHARED, "The bank raised rates by half a point on Tuesday.", "World"), 0.7) is None
    index.remove(0)
    assert index.exceeds((SHARED, "The bank raised rates by half a point on Wednesday.", "Business"), 0.7) is None
    assert len(index) == 1


def record(instruction: str, inp: str = "", out: str = "", **lineage) -> Record:
    return Record(instruction=instruction, input=inp, output=out, lineage=Lineage(generator="input", **lineage))


def test_the_rule_never_compares_a_record_with_its_own_ancestors():
    rule = RougeDedup(0.7)
    root = record("Explain why the sky is blue to a child.")
    rule.seed([root])
    child = record("Explain why the sky is blue to a child, in exactly three sentences.", chain=[root.id],
                   root_id=root.id)
    stranger = record("Explain why the sky is blue to a child, in exactly three sentences.")
    assert rule.check(child) is None  # its own root is skipped
    assert rule.check(stranger) is not None  # anyone else's near-duplicate is still caught
    rule.accepted(child)
    grandchild = record("Explain why the sky is blue to a child, in exactly three sentences, with a diagram.",
                        chain=[root.id, child.id], root_id=root.id)
    assert rule.check(grandchild) is None
    cousin = record("Explain why the sky is blue to a child, in exactly three sentences, with a picture.",
                    chain=[root.id], root_id=root.id)  # another evolution of the same root: not its ancestor
    drop = rule.check(cousin)
    assert drop is not None and "in exactly three sentences" in drop.reason


def test_a_revoked_record_leaves_the_pool():
    stage = build_stage("pairs", ["input_rouge_l", "exact_duplicate"], FilterConfig())
    first = record("Is this a promise?", "We will build ten new schools by 2030.", "True")
    accepted, _, _ = stage.run([first])
    assert accepted == [first]
    again = record("Is this a promise?", "We will build ten new schools by 2031.", "True")
    assert [r.rule for r in stage.run([again])[1]] == ["input_rouge_l"]
    stage.revoke("label_quota_full", "the quota filled", first)
    accepted, rejected, _ = stage.run([again])
    assert accepted == [again] and not rejected  # nothing left of the revoked record to block it
    assert stage.counts.entered == stage.counts.accepted + stage.counts.dropped


@pytest.mark.parametrize("on", list(FIELDS))
def test_rule_modes_through_a_stage(on):
    stage = build_stage("rows", ["rouge_l"], FilterConfig(dedup_on=on))
    rows = [record(SHARED, "Storms closed the port for three days.", "World"),
            record(SHARED, "Storms closed the port for four days.", "World"),  # one word: a duplicate in every mode
            record(SHARED, "The league fined the club for late wages.", "Sports"),
            record(SHARED, "The league fined the club for late wages.", "Business")]  # only the output differs
    accepted, rejected, _ = stage.run(rows)
    kept = {"instruction": [0], "instruction+input": [0, 2], "all": [0, 2, 3]}[on]
    assert [rows.index(r) for r in accepted] == kept
    assert all(r.rule == "rouge_l" for r in rejected)
    if on == "all":
        assert "input 0.857" in rejected[0].reason and "output 1.000" in rejected[0].reason


def test_random_rows_sharing_one_instruction_match_the_reference_at_scale():
    rng = random.Random(4)
    words = "port storm bank rates club wages league court ruling vote budget rail strike".split()
    inputs = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(120)]
    rows = [(SHARED, rng.choice(inputs), rng.choice(["World", "Sports", "Business"])) for _ in range(300)]
    assert index_greedy(rows, 0.7) == ref_greedy(rows, 0.7)
