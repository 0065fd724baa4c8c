from dataclasses import asdict

import pytest
from rouge_score import rouge_scorer

from sprout.backends.base import Sampling
from sprout.config.filters import FilterConfig
from sprout.core.records import Lineage, Record
from sprout.filters.build import build_filters, build_stage
from sprout.filters.dedup_rules import ExactDuplicate, RougeDedup
from sprout.filters.rules import (
    BannedPrefix,
    Blacklist,
    EmptyOutput,
    FormatLeak,
    InputEqualsOutput,
    LeadingCharacter,
    PunctStopwordsOnly,
    Refusal,
    ScaffoldCopy,
    TrailingColon,
    WordCount,
    conflicting_outputs,
    duplicate_instances,
    max_instances,
)
from sprout.filters.stage import FilterStage

LINEAGE = Lineage(generator="test")


def rec(instruction="Explain the water cycle briefly.", input="", output="ok"):
    return Record(instruction=instruction, input=input, output=output, lineage=LINEAGE)


@pytest.mark.parametrize(("instruction", "reason"), [
    ("Too short here", "instruction has 3 words; needs at least 4"),
    ("Four words are enough", None),
    (" ".join(["word"] * 151), "instruction has 151 words; allows at most 150"),
])
def test_word_count(instruction, reason):
    assert WordCount("instruction", 4, 150, "word_count").check(rec(instruction)) == reason


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


def test_rouge_rule_agrees_with_rouge_score_at_the_threshold_and_reports_the_score():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    base = "a b c d e f g h i j"
    rule = RougeDedup(0.7, track_scores=True)
    rule.accepted(rec(base))
    for candidate in ["a b c d e f g x y z", "a b c d e f g h x y", "a b c d e f g h i j k l", "q r s t u v"]:
        score = scorer.score(base, candidate)["rougeL"].fmeasure
        verdict = rule.check(rec(candidate))
        assert (verdict is not None) == (score > 0.7), (candidate, score)
        if verdict:
            assert verdict.score == score and repr(base) in verdict.reason
    expected = [scorer.score(base, c)["rougeL"].fmeasure for c in ["a b c d e f g x y z", "a b c d e f g h x y",
                                                                    "a b c d e f g h i j k l"]]
    assert rule.scores == [*expected, None]  # rouge-score's own floats, e.g. 0.8000000000000002; None: under 0.3


def test_content_rules():
    refusal = Refusal(FilterConfig().refusal_phrases, 80)
    assert refusal.check(rec(output="I'm sorry, but I can't help with that.")) == \
        "refusal phrase 'sorry' in a 8-word output"
    assert refusal.check(rec(output="Sorry to hear that! " + "Here is a detailed plan. " * 20)) is None
    assert refusal.check(rec(output="As an AI, I have no opinions.")) is not None
    empty = PunctStopwordsOnly()
    assert empty.check(rec(output="It is that, and that is it.")) == "output is only punctuation and stop words"
    assert empty.check(rec(output="...!?")) is not None
    assert empty.check(rec(output="Paris is the capital.")) is None
    label = Record(instruction="Is it spam? Yes or No.", output="No", kind="classification", label="No",
                   lineage=LINEAGE)
    assert empty.check(label) is None  # a label may be a stop word
    scaffold = ScaffoldCopy(FilterConfig().scaffold_phrases)
    assert scaffold.check(rec("Rewrite the #Given Prompt# to be harder.")) == "mentions the scaffold 'given prompt'"
    assert scaffold.check(rec("Rewrite this poem to be more cheerful.")) is None
    assert scaffold.check(rec("Here is the rewritten prompt: explain tides.")) == \
        "mentions the scaffold 'rewritten prompt'"
    length = WordCount("output", 1, 5, "output_length")
    assert length.check(rec(output="one two three four five six")) == "output has 6 words; allows at most 5"
    dedup = ExactDuplicate()
    dedup.accepted(rec(output="same"))
    assert dedup.check(rec(output="same ")) == "exact duplicate of an accepted record"
    assert dedup.check(rec(output="other")) is None


def test_max_instances_per_task():
    task = Lineage(generator="t", task_id="task-1")
    records = [Record(instruction="Name a colour.", output=f"c{i}", lineage=task) for i in range(7)]
    assert set(max_instances(5)(records)) == {5, 6}


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
    filters = build_filters(FilterConfig(), [])
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
    assert rejected[0].score == 1.0  # the ROUGE score travels to rejected.jsonl


def test_rule_order_is_configurable_and_unknown_rules_are_named(tmp_path):
    config = FilterConfig(task_rules=["rouge_l", "word_count"])
    filters = build_filters(config, [])
    assert [r.name for r in filters.tasks.rules] == ["rouge_l", "word_count"]
    with pytest.raises(ValueError, match="unknown rule.*'wordcount'.*valid rules: .*word_count"):
        FilterConfig(task_rules=["wordcount"])


def test_stage_group_rules_run_before_record_rules():
    stage = FilterStage("instances", [EmptyOutput()], {"conflicting_outputs": conflicting_outputs})
    accepted, rejected, _ = stage.run([rec(input="a", output="1"), rec(input="a", output=""),
                                       rec(input="b", output="")])
    assert accepted == []
    assert [r.rule for r in rejected] == ["conflicting_outputs", "conflicting_outputs", "empty_output"]
    assert stage.counts.entered == stage.counts.accepted + stage.counts.dropped


def test_conflicting_outputs_are_outputs_that_disagree_not_variants_of_one_answer():
    group = [rec(input="a", output="The Nile, the Congo and the Niger."),
             rec(input="a", output="The Nile, the Congo and the Zambezi."),  # a one-word variant: they agree
             rec(input="b", output="True"), rec(input="b", output="False"),  # labels that disagree
             rec(input="c", output="A long answer about rivers."), rec(input="c", output=""),  # blank disagrees
             rec(input="d", output="x y z w"), rec(input="d", output="x y z q"), rec(input="d", output="x y q r")]
    # d: the first two agree (0.75) and so do the last two, but the first and the last do not (0.5): a conflict
    assert conflicting_outputs(group) == {i: reason for i, reason in {
        2: "input has 2 different outputs", 3: "input has 2 different outputs", 4: "input has 2 different outputs",
        5: "input has 2 different outputs", 6: "input has 3 different outputs", 7: "input has 3 different outputs",
        8: "input has 3 different outputs"}.items()}
    assert conflicting_outputs(group[:2], threshold=0.9) == {0: "input has 2 different outputs",
                                                             1: "input has 2 different outputs"}


def test_the_funnel_subtracts_each_drop_where_it_happened(tmp_path):
    """A parse failure is counted before the first rule (it never reached one), a judge's unparseable verdict right
    after the judge, a revoked record last: so `remaining` after each step is what the next step checked."""
    from sprout.backends.cache import CachedBackend
    from sprout.core.prompts import load_prompt
    from sprout.filters.judge import JudgeRule
    from sprout.reports.report import _funnel
    from tests.conftest import ScriptedBackend

    answers = iter(["Valid", "maybe?"])
    backend = CachedBackend(ScriptedBackend(lambda m, s: next(answers)), tmp_path / "c.sqlite")
    judge = JudgeRule("quality", load_prompt("judge/quality"), backend,
                      Sampling(temperature=0.0, max_tokens=4), drop=["Invalid"], keep=["Valid"])
    stage = build_stage("rows", ["word_count", "rouge_l"], FilterConfig(), [judge])
    stage.run([rec("Explain the water cycle to a child."), rec("Tiny")])
    stage.reject_external("parse:rewrite", "the rewrite hit the length limit", rec(""))
    stage.run([rec("List three uses of copper wire today.")])
    stage.revoke("target_reached", "the target was met", rec("Explain the water cycle to a child."))
    assert list(stage.counts.rules) == ["parse:rewrite", "word_count", "rouge_l", "judge:quality",
                                        "judge:quality:unparseable", "target_reached"]
    steps = _funnel(asdict(stage.counts))
    assert [(s["rule"], s["remaining"]) for s in steps] == [
        ("candidates", 4), ("parse:rewrite", 3), ("word_count", 2), ("rouge_l", 2), ("judge:quality", 2),
        ("judge:quality:unparseable", 1), ("target_reached", 0), ("accepted", 0)]
    assert stage.counts.rules["word_count"]["checked"] == 3  # what was left after the parse failure


def test_the_registry_is_the_one_source_of_rule_names_and_keys():
    from pydantic import ValidationError

    from sprout.config.filters import INSTANCE_RULES, TASK_RULES
    from sprout.filters.registry import KNOWN_RULES, RULES, rule_keys

    assert KNOWN_RULES == set(RULES) and set(TASK_RULES + INSTANCE_RULES) <= KNOWN_RULES
    assert set(rule_keys()) <= set(FilterConfig.model_fields)  # every key a rule reads is a `filters:` key
    assert set(FilterConfig.model_fields) - set(rule_keys()) == {"task_rules", "instance_rules", "judges"}
    assert {spec.level for spec in RULES.values()} <= {"record", "group", "batch"}
    config = FilterConfig(min_words=2, rouge_l_threshold=0.5)
    for name in KNOWN_RULES - {"decontamination"}:  # each made from the keys it declares, named as registered
        rule = build_stage("s", [name], config)
        assert [*rule.group_rules, *(r.name for r in rule.rules)] == [name]
    with pytest.raises(ValidationError, match="Input should be greater than or equal to 0"):
        FilterConfig(min_words=-1)  # a declared key keeps its constraints


def test_what_a_rule_needs_is_checked_once_over_every_rule_list(tmp_path):
    from sprout.config.loader import load_config
    from sprout.core.errors import UserError
    from sprout.runs.evolve import EvolveRunConfig
    from sprout.runs.synth import FlanRunConfig, SynthRunConfig

    cases = [(None, ["filters.task_rules=[decontamination]"], "task_rules lists `decontamination` but "
              "`decontaminate_against` names no eval file"),
             (None, ["generators.pair_synthesis=[{task: x.yaml, rules: [decontamination]}]"],
              "generators.pair_synthesis.0.rules lists `decontamination` but `filters.decontaminate_against`"),
             (None, ["generators.evol_instruct={rules: [decontamination]}"], "generators.evol_instruct.rules lists"),
             (SynthRunConfig, ["synth={task: x.yaml, rules: [decontamination]}"], "synth.rules lists"),
             (FlanRunConfig, ["flan={tasks: [sentiment], rules: [decontamination]}"], "flan.rules lists"),
             (EvolveRunConfig, ["evol_instruct={rules: [decontamination]}"], "evol_instruct.rules lists")]
    for model, sets, expected in cases:
        with pytest.raises(UserError) as caught:
            load_config(None, sets, model=model)
        assert expected in str(caught.value) and "Fix: add `decontaminate_against: [path/to/eval.jsonl]` under " \
            "`filters:`, or drop the rule" in str(caught.value), (sets, caught.value.details)
    evals = tmp_path / "eval.txt"
    evals.write_text("an eval item\n", encoding="utf-8")
    config = load_config(None, ["synth={task: x.yaml, rules: [decontamination]}",
                                f"filters.decontaminate_against=[{evals}]"], model=SynthRunConfig)
    assert config.synth.rules == ["decontamination"]
