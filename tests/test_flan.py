"""FLAN-style templates: placeholder checks, options block, inverted templates, expansion, user data, growing."""

import json
from collections import Counter

import pytest
import yaml

from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig
from sprout.core.errors import UserError
from sprout.filters.build import build_stage
from sprout.generators.flan.config import FlanConfig, FlanTaskConfig
from sprout.generators.flan.expansion import FlanExpansion, load_source
from sprout.generators.flan.template_grow import TemplatesGrowConfig, check_variant, grow_templates, write_grown
from sprout.generators.flan.templates import load_template_set, options_block
from tests.conftest import write

SHIPPED = ["sentiment", "nli", "summarization", "qa", "paraphrase"]
HEADER = """task: mood
kind: classification
data: {data}
label_field: label
answer_choices: [sad, happy]
templates:
"""


def template_file(tmp_path, templates: str, rows=None):
    data = write(tmp_path / "mood.jsonl", "".join(json.dumps(r) + "\n" for r in rows or [
        {"text": "I won the lottery today.", "label": 1}, {"text": "My dog ran away.", "label": 0}]))
    write(tmp_path / "flan" / "mood.yaml", HEADER.format(data=data) + templates)
    return tmp_path / "flan"


GOOD = """  - name: ask
    instruction: "How does the writer feel?"
    input: "{{ text }}\\n\\n{{ options }}"
    output: "{{ answer }}"
  - name: write_one
    inverted: true
    instruction: "Write a {{ answer }} sentence about your day."
    output: "{{ text }}"
"""


def expand(root, task="mood", **config):
    source = load_source(FlanTaskConfig(task=task), task, root=root)
    expansion = FlanExpansion(FlanConfig(tasks=[task], **config), build_stage("flan", FlanConfig(
        tasks=[task]).rules, FilterConfig()), run_seed=5)
    return expansion.run(source), expansion


def test_options_block_and_inverted_rendering(tmp_path):
    result, expansion = expand(template_file(tmp_path, GOOD), templates_per_row=None)
    by_template = {(r.lineage.operation, r.lineage.seed_ids[0]): r for r in result.records}
    asked = by_template[("mood/ask", "mood.jsonl:1")]
    assert asked.input == "I won the lottery today.\n\nOPTIONS:\n- sad\n- happy"
    assert asked.output == "happy" and asked.label == "happy" and asked.kind == "classification"
    inverted = by_template[("mood/write_one", "mood.jsonl:2")]
    assert inverted.instruction == "Write a sad sentence about your day."
    assert inverted.output == "My dog ran away." and inverted.kind == "generation" and inverted.label is None
    assert expansion.stats[0] | {"templates": None} == {
        "task": "mood", "rows": 2, "records": 4, "accepted": 4, "inverted": 2, "templates": None,
        "templates_used": 2}
    assert options_block(["a", "b"]) == "OPTIONS:\n- a\n- b"


@pytest.mark.parametrize("templates, message", [
    (GOOD.replace("{{ text }}\\n\\n{{ options }}", "{{ txet }}\\n\\n{{ options }}"),
     "template 'ask': uses unknown placeholder(s) ['txet']"),
    (GOOD.replace("\\n\\n{{ options }}", ""), "ends its input with `{{ options }}`"),
    (GOOD.replace('output: "{{ answer }}"', 'output: "{{ text }}"'), "output is exactly `{{ answer }}`"),
    (GOOD.replace("Write a {{ answer }} sentence", "Write a sentence"), "inverted classification template gives"),
    (GOOD.replace("How does the writer feel?", "{% if x %}"), "Jinja syntax error"),
])
def test_template_problems_name_file_line_and_template(tmp_path, templates, message):
    root = template_file(tmp_path, templates)
    with pytest.raises(UserError) as error:
        load_source(FlanTaskConfig(task="mood"), "mood", root=root)
    text = str(error.value)
    assert message in text
    assert f"{root / 'mood.yaml'}:" in text


def test_rows_with_unknown_label_or_empty_field_are_reported_by_line(tmp_path):
    root = template_file(tmp_path, GOOD, rows=[{"text": "fine", "label": 1}, {"text": "", "label": 0},
                                               {"text": "odd", "label": 7}])
    with pytest.raises(UserError) as error:
        load_source(FlanTaskConfig(task="mood"), "mood", root=root)
    assert "mood.jsonl:2: empty field(s) ['text']" in str(error.value)
    assert "mood.jsonl:3: label 7 has no answer word" in str(error.value)


def test_shipped_sets_expand_across_all_templates():
    for task in SHIPPED:
        templates = load_template_set(task)
        assert len(templates.spec.templates) >= 10
        assert sum(t.inverted for t in templates.spec.templates) >= 3
        result, expansion = expand(templates.path.parent, task, templates_per_row=None)
        stats = expansion.stats[0]
        assert stats["templates_used"] == len(templates.spec.templates)
        assert stats["records"] == stats["rows"] * len(templates.spec.templates) == len(result.records)
        if templates.classification:
            options = [r for r in result.records if r.kind == "classification"]
            assert options and all("OPTIONS:\n- " in (r.input or r.instruction) for r in options)


def test_sampling_per_row_honours_count_and_inverted_share_and_is_stable():
    root = load_template_set("sentiment").path.parent
    result, expansion = expand(root, "sentiment", templates_per_row=4, inverted_share=0.5)
    per_row = Counter(r.lineage.seed_ids[0] for r in result.records)
    assert set(per_row.values()) == {4}
    assert expansion.stats[0]["inverted"] == 2 * 30
    again, _ = expand(root, "sentiment", templates_per_row=4, inverted_share=0.5)
    assert [r.id for r in again.records] == [r.id for r in result.records]


def test_any_datasets_loadable_file_with_a_field_mapping(tmp_path):
    csv = write(tmp_path / "reviews.csv", 'review,stars\n"Great value, would buy again",1\n"Broke in a week",0\n')
    source = load_source(FlanTaskConfig(task="sentiment", data=csv, fields={"text": "review", "label": "stars"}),
                         "flan.tasks[0]")
    assert [row["text"] for _, row in source.rows] == ["Great value, would buy again", "Broke in a week"]
    with pytest.raises(UserError, match=r"flan.tasks\[0\].fields: column\(s\) \['comment'\] not in"):
        load_source(FlanTaskConfig(task="sentiment", data=csv, fields={"text": "comment"}), "flan.tasks[0]")


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(UserError, match="Known tasks: .*sentiment"):
        load_template_set("sentimnet")


def test_grow_checks_placeholders_structure_and_rouge(tmp_path, scripted):
    templates = load_template_set("sentiment")
    first = next(t for t in templates.spec.templates if not t.inverted and not t.input)  # text + options
    variants = iter([
        "Here is what someone wrote about a purchase: {{ text }}\n\nSo, were they pleased or let down?\n\n"
        "{{ options }}",  # a real rewording, same placeholders
        "What is the sentiment?\n\n{{ options }}",  # dropped {{ text }}
        "{{ text }} {{ reviewer }}\n\n{{ options }}",  # invented {{ reviewer }}
        first.instruction,  # the same wording: ROUGE-L 1.0
        "{{ options }}\n\n{{ text }} How did it go?",  # options no longer last
    ])

    def reply(messages, sampling):  # five samples for `first`; nothing usable for the other templates
        return next(variants) if messages[-1]["content"] == first.instruction else ""

    backend = CachedBackend(scripted(reply), tmp_path / "cache.sqlite")
    result = grow_templates(templates, TemplatesGrowConfig(variants=5), backend)
    rules = Counter(r["rule"] for r in result.rejected)
    reasons = [r["reason"] for r in result.rejected if r["template"] == first.name]
    assert rules["parse"] == 5 * (len(templates.spec.templates) - 1)
    assert len(result.kept) == 1 and result.kept[0].grown_from == first.name
    assert "dropped ['text']" in reasons[0] and "invented ['reviewer']" in reasons[1]
    assert rules["rouge_l"] == 1 and rules["template_rules"] == 1
    out = write_grown(templates, result, tmp_path / "sentiment.grown.yaml", force=False)
    grown = load_template_set("sentiment.grown", root=tmp_path)
    assert [t.name for t in grown.spec.templates] == [f"{first.name}_v1"]
    assert grown.spec.answer_choices == templates.spec.answer_choices
    assert len(out.with_suffix(".rejected.jsonl").read_text().splitlines()) == len(result.rejected)
    with pytest.raises(UserError, match="exists"):
        write_grown(templates, result, out, force=False)


def test_check_variant_reports_dropped_and_invented():
    templates = load_template_set("qa")
    original = next(t for t in templates.spec.templates if not t.inverted and not t.input)
    assert check_variant(templates, original, original.instruction) is None
    rule, reason = check_variant(templates, original, original.instruction.replace("{{ question }}", "{{ q }}"))
    assert rule == "placeholders" and reason == "dropped ['question']; invented ['q']"


def test_grown_file_header_is_yaml_with_the_task_fields(tmp_path):
    templates = load_template_set("nli")
    from sprout.generators.flan.template_grow import GrowResult

    kept = templates.spec.templates[0].model_copy(update={"name": "x_v1", "grown_from": "x"})
    write_grown(templates, GrowResult(kept=[kept]), tmp_path / "nli.grown.yaml", force=False)
    data = yaml.safe_load((tmp_path / "nli.grown.yaml").read_text())
    assert data["task"] == "nli" and data["label_field"] == "label" and data["templates"][0]["grown_from"] == "x"


def test_template_reaching_python_internals_is_refused_when_loaded(tmp_path):
    root = template_file(tmp_path, GOOD.replace("How does the writer feel?", "{{ text.__class__.__mro__ }}"))
    with pytest.raises(UserError, match="refused by the sandbox") as refused:
        load_source(FlanTaskConfig(task="mood"), "mood", root=root)
    assert "template 'ask'" in str(refused.value.details) and "__class__" in str(refused.value.details)


def test_template_that_would_exhaust_memory_is_refused(tmp_path):
    root = template_file(tmp_path, GOOD.replace("How does the writer feel?", "{{ 'a' * 10**10 }}"))
    with pytest.raises(UserError, match="refused by the sandbox") as refused:
        load_source(FlanTaskConfig(task="mood"), "mood", root=root)
    assert "at most 1,000,000" in str(refused.value.details)
