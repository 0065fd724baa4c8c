"""Diversity analytics (issue 9, part 4): verb–noun structure, lengths, nearest-neighbour ROUGE-L, in the report."""

from __future__ import annotations

import json
import random

import pytest

from sprout.filters.rouge_scoring import rouge_l
from sprout.reports import analytics
from sprout.reports.analytics import LENGTH_EDGES, diversity, length_histogram, nearest_rouge_l, verb_objects
from sprout.reports.report import write_reports
from tests.conftest import write

INSTRUCTIONS = {
    "Write a short poem about the sea.": ("write", "poem"),
    "Classify the sentiment of this tweet.": ("classify", "sentiment"),
    "Given a list of numbers, find the largest one.": ("find", None),  # "one" is a numeral, not a noun object
    "Translate the sentence into Spanish.": ("translate", "sentence"),
    "Summarize the following article in two sentences.": ("summarize", "article"),
    "What is the capital of France?": (None, None),  # a question: no verb, only the copula
    "Please explain how vaccines train the immune system.": ("explain", None),  # its object is a clause
    "Read the review. Then decide whether the customer was happy.": ("read", "review"),  # first sentence first
}


def test_the_parser_finds_the_verb_closest_to_the_root_and_its_noun_object():
    assert analytics._spacy_pipeline() is not None, "spaCy's English model is a dependency: `make setup` installs it"
    nlp = analytics._spacy_pipeline()
    found = {text: analytics._parsed_pair(doc) for text, doc in zip(INSTRUCTIONS, nlp.pipe(INSTRUCTIONS), strict=True)}
    assert found == INSTRUCTIONS


def test_verb_objects_counts_verbs_and_their_most_common_objects():
    texts = (["Write a poem about rain.", "Write a poem about cats.", "Write a story about a dragon.",
              "Write an email to my landlord.", "Classify the tweet.", "What time is it?"])
    verbs = verb_objects(texts)
    assert verbs["parser"].startswith("spaCy ") and verbs["approximate"] is False
    assert (verbs["instructions"], verbs["with_verb"], verbs["with_verb_noun"]) == (6, 5, 5)
    assert verbs["top"][0] == {"verb": "write", "count": 4, "objects": [
        {"noun": "poem", "count": 2}, {"noun": "email", "count": 1}, {"noun": "story", "count": 1}]}
    assert verbs["top"][1] == {"verb": "classify", "count": 1, "objects": [{"noun": "tweet", "count": 1}]}
    assert (verbs["distinct_verbs"], verbs["distinct_pairs"]) == (2, 4)


def test_without_spacy_the_rule_based_fallback_is_used_and_named(monkeypatch):
    monkeypatch.setattr(analytics, "_spacy_pipeline", lambda: None)
    verbs = verb_objects(["Write a short poem about the sea.", "What is the capital of France?",
                          "Classify the sentiment of this tweet."])
    assert verbs["approximate"] is True and verbs["parser"].startswith("rule-based fallback")
    assert [(row["verb"], row["objects"]) for row in verbs["top"]] == [
        ("classify", [{"noun": "sentiment", "count": 1}]), ("write", [{"noun": "short", "count": 1}])]


def test_nearest_rouge_l_is_each_instructions_best_match_among_the_others():
    rng = random.Random(7)
    words = "add list sort find the a of numbers words poem story city river write name three two".split()
    texts = list(dict.fromkeys(" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(120)))
    brute = [max(rouge_l(other, text) for j, other in enumerate(texts) if j != i) for i, text in enumerate(texts)]
    result = nearest_rouge_l(texts)
    expected = [0] * 20
    for score in brute:
        expected[min(int(score * 20), 19)] += 1
    assert result["counts"] == expected and result["scored"] == len(texts) and not result["sampled"]
    assert result["above_0_7"] == sum(score > 0.7 for score in brute)
    assert result["median"] == round(sorted(brute)[len(brute) // 2], 4)


def test_a_sampled_nearest_rouge_l_scores_each_sampled_instruction_against_all_the_others(monkeypatch):
    import sprout.reports.analytics

    rng = random.Random(8)
    words = "add list sort find the a of numbers words poem story city river write name three two".split()
    texts = list(dict.fromkeys(" ".join(rng.choices(words, k=rng.randint(2, 9))) for _ in range(150)))
    monkeypatch.setattr(sprout.reports.analytics, "NEAREST_MAX", 40)
    result = nearest_rouge_l(texts)
    picks = sorted(random.Random(0).sample(range(len(texts)), 40))
    brute = [max(rouge_l(other, texts[i]) for j, other in enumerate(texts) if j != i) for i in picks]
    assert result["sampled"] and result["scored"] == 40
    assert result["median"] == round(sorted(brute)[20], 4) and result["above_0_7"] == sum(s > 0.7 for s in brute)


def test_nearest_rouge_l_of_one_or_no_instruction():
    assert nearest_rouge_l(["Only one."])["counts"][0] == 1
    assert nearest_rouge_l([])["scored"] == 0 and nearest_rouge_l([])["median"] is None


def test_length_histogram_bins_words_and_keeps_very_long_texts_in_the_last_bin():
    texts = ["", "one two three", "w " * 5, "w " * 700, "w " * 5000]
    histogram = length_histogram(texts)
    assert histogram["edges"] == LENGTH_EDGES
    assert histogram["counts"][0] == 2 and histogram["counts"][1] == 1 and histogram["counts"][-1] == 2
    assert sum(histogram["counts"]) == len(texts) and histogram["max"] == 5000 and histogram["median"] == 5


def test_diversity_counts_distinct_instructions_and_every_output():
    rows = [{"instruction": "Write a poem about rain.", "output": "Rain falls."},
            {"instruction": "Write a poem about rain.", "output": "Drops."},
            {"instruction": "Name a river.", "output": "The Nile."}]
    spread = diversity(rows)
    assert spread["verbs"]["instructions"] == 2 and spread["nearest_rouge_l"]["scored"] == 2
    assert sum(spread["lengths"]["instruction"]["counts"]) == sum(spread["lengths"]["output"]["counts"]) == 3


def test_analytics_appear_in_every_report_format(tmp_path):
    rows = [{"id": str(i), "instruction": text, "input": "", "output": "An answer.", "kind": "generation",
             "lineage": {"generator": "self_instruct"}} for i, text in enumerate(INSTRUCTIONS)]
    write(tmp_path / "report.json", json.dumps({"out_dir": str(tmp_path), "stages": {}}))
    write(tmp_path / "examples.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    write_reports(tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["diversity"]["verbs"]["with_verb_noun"] == 5
    html, markdown = (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()
    assert 'id="diversity"' in html and "<td>write</td>" in html and "Root verbs and their direct objects" in html
    assert "nearest other accepted instruction" in html and "Instruction length in words" in html
    assert "| write | 1 | poem 1 |" in markdown and "Nearest-neighbour ROUGE-L of 8 distinct" in markdown


@pytest.mark.parametrize("field", ["instruction", "output"])
def test_a_report_of_rows_missing_text_still_builds(tmp_path, field):
    row = {"id": "1", "instruction": "Name a river.", "output": "Nile", "lineage": {"generator": "x"}}
    row.pop(field)
    write(tmp_path / "report.json", json.dumps({"out_dir": str(tmp_path)}))
    write(tmp_path / "examples.jsonl", json.dumps(row) + "\n")
    write_reports(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["diversity"]["lengths"][field]["counts"][0] == 1
