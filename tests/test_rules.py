import pytest
from rouge_score import rouge_scorer

from sprout.config import FilterConfig
from sprout.filters.rules import (
    BannedPrefix,
    Blacklist,
    EmptyOutput,
    FormatLeak,
    InputEqualsOutput,
    LeadingCharacter,
    RougeDedup,
    TrailingColon,
    WordCount,
    conflicting_outputs,
    duplicate_instances,
)
from sprout.filters.stage import FilterStage
from sprout.records import Lineage, Record
from sprout.run_data import build_filters

LINEAGE = Lineage(generator="test")


def rec(instruction="Explain the water cycle briefly.", input="", output="ok"):
    return Record(instruction=instruction, input=input, output=output, lineage=LINEAGE)


@pytest.mark.parametrize(("instruction", "reason"), [
    ("Too short here", "3 words; needs at least 4"),
    ("Four words are enough", None),
    (" ".join(["word"] * 151), "151 words; allows at most 150"),
])
def test_word_count(instruction, reason):
    assert WordCount(4, 150).check(rec(instruction)) == reason


@pytest.mark.parametrize(("instruction", "reason"), [
    ("Describe the image below in detail.", "contains 'image'"),
    ("Go to the store and buy milk.", "contains 'go to'"),
    ("Write a paragraph about autumn.", None),  # 'graph' inside a word is fine
    ("Plot the data as a DIAGRAM please.", "contains 'plot'"),
])
def test_blacklist_matches_whole_words(instruction, reason):
    assert Blacklist(FilterConfig().blacklist).check(rec(instruction)) == reason


def test_prefix_and_leading_character():
    assert BannedPrefix(["Write a program"]).check(rec("write a program that sorts numbers")) is not None
    assert LeadingCharacter().check(rec("- Explain gravity to a child.")) == "starts with punctuation '-'"
    assert LeadingCharacter().check(rec("Ébauchez un plan de cours.")) == "starts with non-ASCII 'É'"
    assert LeadingCharacter().check(rec("Explain gravity to a child.")) is None


def test_rouge_rule_agrees_with_rouge_score_at_the_threshold():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    base = "a b c d e f g h i j"
    rule = RougeDedup(0.7)
    rule.accepted(rec(base))
    for candidate in ["a b c d e f g x y z", "a b c d e f g h x y", "a b c d e f g h i j k l", "q r s t u v"]:
        score = scorer.score(base, candidate)["rougeL"].fmeasure
        assert (rule.check(rec(candidate)) is not None) == (score > 0.7), (candidate, score)


def test_instance_rules():
    assert EmptyOutput().check(rec(output="  ")) == "output is empty"
    assert InputEqualsOutput().check(rec(input="same", output="same ")) == "input and output are the same"
    assert InputEqualsOutput().check(rec(input="", output="x")) is None
    assert TrailingColon().check(rec(output="Here is the list:")) == "output ends with ':'"
    leak = FormatLeak(FilterConfig().format_markers)
    expected = "output contains the scaffold marker 'Output:'"
    assert leak.check(rec(output="2. Non-food items Output: 3. More")) == expected
    assert leak.check(rec(input="x\nclass label: Spam")) == "input contains the scaffold marker 'class label:'"
    assert leak.check(rec(output="The ratio 3:1 and time 10:30 are fine; so is 'Note: read twice'.")) is None
    group = [rec(input="a", output="1"), rec(input="a", output="2"), rec(input="b", output="3"),
             rec(input="b", output="3")]
    assert set(conflicting_outputs(group)) == {0, 1}
    assert duplicate_instances(group) == {3: "exact duplicate of an earlier instance"}


def test_stage_is_greedy_in_order_counts_every_rule_and_keeps_the_unjudged_rest():
    filters = build_filters(FilterConfig(), seeds=[])
    candidates = [rec("Explain the water cycle to a child."), rec("Explain the water cycle to a child!"),
                  rec("Tiny"), rec("List three uses of copper wire."), rec("Name two rivers in Spain.")]
    accepted, rejected, rest = filters.tasks.run(candidates, limit=2)
    assert [r.instruction for r in accepted] == [candidates[0].instruction, candidates[3].instruction]
    assert [(r.rule, r.record.instruction) for r in rejected] == [
        ("rouge_l", candidates[1].instruction), ("word_count", "Tiny")]
    assert rest == candidates[4:]
    counts = filters.tasks.counts
    assert counts.entered == 4 and counts.accepted == 2
    assert counts.rules["word_count"] == {"checked": 4, "dropped": 1}
    assert counts.rules["rouge_l"] == {"checked": 3, "dropped": 1}


def test_stage_group_rules_run_before_record_rules():
    stage = FilterStage("instances", [EmptyOutput()], {"conflicting_outputs": conflicting_outputs})
    accepted, rejected, _ = stage.run([rec(input="a", output="1"), rec(input="a", output=""),
                                       rec(input="b", output="")])
    assert accepted == []
    assert [r.rule for r in rejected] == ["conflicting_outputs", "conflicting_outputs", "empty_output"]
    assert stage.counts.entered == stage.counts.accepted + stage.counts.dropped
