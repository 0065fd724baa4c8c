"""Pair synthesis: label balance steered through output-first, label-set validation, task-spec errors."""

import random
import re
from collections import Counter

import pytest

from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig
from sprout.core.apportion import quotas
from sprout.core.errors import UserError
from sprout.core.parsing import clean_input, match_label
from sprout.filters.build import build_stage
from sprout.generators.pair_synthesis.config import PairSynthesisConfig
from sprout.generators.pair_synthesis.generator import PairSynthesis
from sprout.generators.pair_synthesis.task_spec import load_specs, load_task_spec
from tests.conftest import REPO, write

PROMISES = REPO / "seeds" / "tasks" / "political_promises.yaml"
PLAIN = REPO / "seeds" / "tasks" / "plain_english.yaml"
VOCAB = ("tax rail school clinic water bridge pension police farm energy housing broadband tram port court "
         "museum library forest river airport road park harbour market factory bus ferry hospital").split()


def fresh_input(messages) -> str:
    """A distinct sentence per request (seeded by the prompt text, so cache keys stay stable)."""
    rng = random.Random(str(messages))
    return f"We will {rng.choice(['build', 'fund', 'close', 'open'])} " + " ".join(rng.sample(VOCAB, 9)) + "."


def always_true(messages, sampling):
    """A model that writes good inputs but labels every one "True" (input-first's skew, made extreme)."""
    if messages[0]["content"].startswith("You write realistic inputs"):
        return fresh_input(messages)
    return "True"


def make(tmp_path, scripted, reply=always_true, task=PROMISES, **overrides):
    config = PairSynthesisConfig(task=task, **{"n": 20, "requests_per_batch": 8, **overrides})
    (spec,) = load_specs([config])
    backend = CachedBackend(scripted(reply), tmp_path / "cache.sqlite")
    stage = build_stage("pairs", config.rules, FilterConfig())
    return PairSynthesis(config, spec, backend, stage, run_seed=3), backend


def run(generator, batches=20):
    records, rejections = [], []
    for batch in range(batches):
        if generator.done:
            break
        result = generator.run_batch(batch)
        records += result.records
        rejections += result.rejections
    return records, rejections


def test_input_first_always_true_still_yields_the_asked_distribution(tmp_path, scripted):
    generator, _ = make(tmp_path, scripted)
    records, rejections = run(generator)
    assert Counter(r.label for r in records) == {"True": 10, "False": 10}
    by_mode = Counter((r.lineage.operation, r.label) for r in records)
    assert by_mode[("input_first", "False")] == 0  # all balance came from output-first
    assert by_mode[("output_first", "False")] == 10
    stats = generator.stats()
    assert set(stats["produced"]["input_first"]) == {"True"}  # the skew is reported
    assert stats["target"] == {"True": 10, "False": 10}
    assert {r.rule for r in rejections} <= {"label_quota_full"} and rejections  # excess Trues, counted
    counts = generator.stage.counts
    assert counts.entered == len(records) + len(rejections)


def test_uneven_target_distribution(tmp_path, scripted):
    generator, _ = make(tmp_path, scripted, n=12, label_distribution={"True": 1, "False": 3})
    records, _ = run(generator)
    assert Counter(r.label for r in records) == {"True": 3, "False": 9}


def test_output_first_only_aims_at_labels_still_short(tmp_path, scripted):
    generator, backend = make(tmp_path, scripted, n=8, input_first_share=0.0)
    generator.accepted["True"] = 4  # True is full: every output-first request must ask for False
    generator.run_batch(0)
    asked = [re.search(r"label is (\w+)\.$", conversation[-1]["content"]).group(1)
             for conversation in backend.inner.batches[0]]
    assert asked == ["False"] * 8


def test_labels_outside_the_set_are_counted_rejects_with_raw_text(tmp_path, scripted):
    def unsure(messages, sampling):
        if messages[0]["content"].startswith("You write realistic inputs"):
            return fresh_input(messages)
        return "Maybe, it depends."

    generator, _ = make(tmp_path, scripted, n=4, input_first_share=1.0, max_batches=1)
    generator.backend.inner.script = unsure
    result = generator.run_batch(0)
    assert not result.records
    assert [r.rule for r in result.rejections] == ["label_not_in_set"] * 8
    assert result.rejections[0].record.raw == "Maybe, it depends."
    assert generator.stage.counts.rules["label_not_in_set"] == {"checked": 8, "dropped": 8}


def test_verified_output_first_drops_inputs_that_do_not_have_their_label(tmp_path, scripted):
    generator, _ = make(tmp_path, scripted, n=8, input_first_share=0.0, verify_output_first=True)
    result = generator.run_batch(0)
    mismatched = [r for r in result.rejections if r.rule == "label_mismatch"]
    assert mismatched and all(r.record.label == "False" for r in mismatched)  # written for False, judged True
    assert all(r.label == "True" for r in result.records)


def test_generation_task_is_input_first_with_a_separate_output_call(tmp_path, scripted):
    def plain(messages, sampling):
        if messages[0]["content"].startswith("You write realistic inputs"):
            return fresh_input(messages)
        return "Simple words: " + messages[-1]["content"].lower()

    generator, backend = make(tmp_path, scripted, reply=plain, task=PLAIN, n=5)
    records, _ = run(generator)
    assert len(records) == 5 and {r.lineage.operation for r in records} == {"input_first"}
    record = records[0]
    assert record.kind == "generation" and record.label is None
    assert record.output == "Simple words: " + record.input.lower()
    assert set(record.lineage.prompts) == {"input_first", "output"}
    assert len(backend.inner.batches) == 2  # one batched call for inputs, one for outputs


def test_inputs_copying_the_task_examples_are_dropped_by_input_rouge(tmp_path, scripted):
    spec = load_task_spec(PROMISES)

    def copier(messages, sampling):
        if messages[0]["content"].startswith("You write realistic inputs"):
            return spec.examples[0].input
        return "True"

    generator, _ = make(tmp_path, scripted, reply=copier, n=4, max_batches=1)
    result = generator.run_batch(0)
    assert not result.records
    assert {r.rule for r in result.rejections} <= {"input_rouge_l", "label_quota_full"}


@pytest.mark.parametrize("reply, expected", [
    ("True", "True"), ("false.", "False"), ("**True** - it names a budget", "True"), ("Answer: False", "False"),
    ("Truely not", None), ("Maybe", None), ("", None), ("\n\nFALSE\nbecause", "False")])
def test_match_label(reply, expected):
    assert match_label(reply, ["True", "False"]) == expected


def test_match_label_prefers_the_longest_label():
    assert match_label("not sure at all", ["not", "not sure"]) == "not sure"


def test_quotas_add_up_exactly():
    assert quotas(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert sum(quotas(7, {"x": 0.2, "y": 0.5, "z": 0.3}).values()) == 7


def test_clean_input_strips_wrapping():
    assert clean_input('"Input: We will cut fares."\n\nThis is a promise.') == "We will cut fares."


SPEC = """name: demo
kind: classification
instruction: Is it a promise?
labels: ["True", "False"]
examples:
  - input: We will build it.
    output: "True"
  - input: Nice weather.
    output: "Yes"
"""


def test_task_spec_label_outside_the_set_names_file_and_line(tmp_path):
    path = write(tmp_path / "demo.yaml", SPEC)
    with pytest.raises(UserError) as error:
        load_task_spec(path)
    text = str(error.value)
    assert f"{path}:9: examples[1].output 'Yes' is not one of the labels" in text
    assert "label 'False' has no example" in text


@pytest.mark.parametrize("text, message", [
    (SPEC.replace('labels: ["True", "False"]\n', ""), "at least two distinct labels"),
    (SPEC.replace("kind: classification", "kind: generation"), "a generation task has no `labels`"),
    (SPEC.replace("name: demo\n", "name: demo\nlables: [a]\n"), "unknown key 'lables'"),
    (SPEC.replace("    output: \"True\"", "    output: true"), "Input should be a valid string"),
])
def test_task_spec_errors(tmp_path, text, message):
    with pytest.raises(UserError) as error:
        load_task_spec(write(tmp_path / "demo.yaml", text))
    assert message in str(error.value)


def test_label_distribution_must_name_the_task_labels():
    with pytest.raises(UserError, match=r"unknown label\(s\) \['Yes'\]"):
        load_specs([PairSynthesisConfig(task=PROMISES, label_distribution={"Yes": 1})])
    with pytest.raises(UserError, match="generation task"):
        load_specs([PairSynthesisConfig(task=PLAIN, label_distribution={"a": 1})])


def test_shipped_task_specs_are_valid_and_balanced():
    promises = load_task_spec(PROMISES)
    assert len(promises.examples) >= 20
    counts = Counter(e.output for e in promises.examples)
    assert counts["True"] == counts["False"]
    assert load_task_spec(PLAIN).kind == "generation"
