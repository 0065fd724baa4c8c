"""The run's one filter stage (filters/shared.py): pools shared by every generator, judges configured once that name
the generators they judge, the parent in a judge's context."""

import pytest

from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig, JudgeConfig
from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record
from sprout.filters.shared import RunFilters
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.evol_instruct.generator import make_evolver
from tests.test_judge import judge_replies


def rec(instruction, output="A full and correct answer.", generator="self_instruct", input="", **lineage):
    return Record(instruction=instruction, input=input, output=output, lineage=Lineage(generator=generator, **lineage))


def test_an_evolved_instruction_is_checked_against_the_grown_tasks_but_not_its_own_ancestor():
    filters = RunFilters(FilterConfig())
    tasks = filters.stage("tasks", ["rouge_l"], "self_instruct", holds="tasks")
    grown = rec("Write a short story about a lighthouse keeper who finds a message in a bottle.")
    other = rec("Explain how a refrigerator keeps food cold using the vapour compression cycle.")
    accepted, rejected, _ = tasks.run([grown, other])
    assert accepted == [grown, other] and not rejected
    evolutions = filters.stage("evolutions", ["rouge_l"], "evol_instruct", dedup_on="instruction")
    source = rec(grown.instruction, output="Once upon a time...")  # the grown task's first instance
    evolutions.seed_dedup([source])
    child = rec(grown.instruction.rstrip(".") + " in exactly one hundred words.", generator="evol_instruct",
                parent_ids=[source.id], chain=[source.id])
    copycat = rec("Explain how a refrigerator keeps food cold using the vapour compression cycle, briefly.",
                  generator="evol_instruct", parent_ids=["elsewhere"], chain=["elsewhere"])
    accepted, rejected, _ = evolutions.run([child, copycat])
    assert accepted == [child]  # its words are its parent's by design: the ancestor is skipped
    (dropped,) = rejected  # a near-copy of another grown task: the pool is shared
    assert dropped.rule == "rouge_l" and dropped.record is copycat and "refrigerator" in dropped.reason
    assert tasks.rules[0] is evolutions.rules[0]  # one pool object
    assert filters.rouge_scores() == tasks.rules[0].scores  # each score counted once for the histogram


def test_synthesised_inputs_are_pooled_per_task_and_exact_duplicates_per_run():
    filters = RunFilters(FilterConfig())
    promises = filters.stage("pairs:promises", ["input_rouge_l", "exact_duplicate"], "pair_synthesis",
                             scope="task:promises")
    weather = filters.stage("pairs:weather", ["input_rouge_l", "exact_duplicate"], "pair_synthesis",
                            scope="task:weather")
    text = "We will build a new bridge over the river before the next election."
    first = rec("Is this a promise?", input=text, output="True", generator="pair_synthesis")
    near = rec("Is this a promise?", input=text.replace("new", "modern"), output="True", generator="pair_synthesis")
    assert promises.run([first])[0] == [first]
    assert promises.run([near])[1][0].rule == "input_rouge_l"  # against every accepted input of its task
    elsewhere = rec("Does this mention weather?", input=near.input, output="No", generator="pair_synthesis")
    assert weather.run([elsewhere])[0] == [elsewhere]  # another task's inputs are another pool
    flan = filters.stage("flan", ["exact_duplicate"], "flan")
    assert flan.run([first.model_copy()])[1][0].rule == "exact_duplicate"  # one exact-duplicate pool for the run


def test_judges_are_configured_once_and_judge_the_generators_they_name(tmp_path, scripted):
    inner = scripted(judge_replies({"": "Invalid"}))
    backend = CachedBackend(inner, tmp_path / "c.sqlite")
    config = FilterConfig(judges=[JudgeConfig(name="quality", prompt="judge/quality", generators=["pair_synthesis"]),
                                  JudgeConfig(name="everywhere", prompt="judge/quality")])
    filters = RunFilters(config, lambda _: backend)
    names = {view: [r.name for r in filters.stage(view, [], generator).batch_rules]
             for view, generator in [("instances", "self_instruct"), ("pairs:t", "pair_synthesis"),
                                     ("flan", "flan"), ("evolutions", "evol_instruct")]}
    assert names == {"instances": ["judge:everywhere"], "pairs:t": ["judge:quality", "judge:everywhere"],
                     "flan": ["judge:everywhere"], "evolutions": ["judge:everywhere"]}
    assert filters.stages["pairs:t"].batch_rules[0] is not filters.stages["flan"].batch_rules[0]
    assert filters.stages["pairs:t"].batch_rules[1] is filters.stages["flan"].batch_rules[0]  # built once
    assert [r.name for r in filters.stage("tasks", [], "self_instruct", holds="tasks").batch_rules] == []


def test_a_judge_that_reads_the_parent_can_only_judge_records_that_have_one():
    equal = JudgeConfig(name="equal", prompt="judge/evol_equal")  # generators: [all]
    with pytest.raises(UserError, match=r"judge 'equal' compares a record with its parent .*generators: "
                                        r"\[evol_instruct\]"):
        RunFilters(FilterConfig(judges=[equal]), lambda _: None)
    RunFilters(FilterConfig(judges=[equal.model_copy(update={"generators": ["evol_instruct"]})]), lambda _: None)


def test_a_judge_in_a_run_without_a_model_is_a_config_error_not_a_crash():
    judges = [JudgeConfig(name="quality", prompt="judge/quality")]
    with pytest.raises(UserError, match=r"judge 'quality' needs a model, and this command runs none"):
        RunFilters(FilterConfig(judges=judges))


def test_the_equality_judge_sees_the_parent_and_filters_judges_reach_evol_instruct(tmp_path, scripted):
    seen = []

    def model(messages, sampling):
        text = messages[-1]["content"]
        seen.append(text)
        if text.startswith("A: "):  # the equality judge: A is the parent
            return "Not Equal"
        if text.startswith("Instruction: "):  # the quality judge
            return "Invalid" if "limerick" in text else "Valid"
        if text.startswith("Rewrite the instruction"):
            sea = "sea" in text
            return "Write a limerick about the sea." if sea else "Name three rivers of Africa and their length."
        return "An answer."

    backend = CachedBackend(scripted(model), tmp_path / "c.sqlite")
    config = FilterConfig(judges=[JudgeConfig(name="quality", prompt="judge/quality", generators=["evol_instruct"])])
    filters = RunFilters(config, lambda _: backend, judges=[(EvolInstructConfig().judge, ["evol_instruct"])])
    sources = [rec("Write a poem about the sea.", output="Waves."), rec("Name three rivers.", output="Nile...")]
    evolver = make_evolver(EvolInstructConfig(rounds=1, rules=[]), filters, sources, lambda _: backend, 1,
                           dedup_against=sources)
    result = evolver.run_round(0)
    assert [r.rule for r in result.rejections] == ["judge:quality"]  # a filters.judges entry judged evol_instruct
    assert "A: Name three rivers.\nB: Name three rivers of Africa and their length." in seen  # the parent, in context
    assert [r.instruction for r in result.records] == ["Name three rivers of Africa and their length."]
    assert list(filters.stages["evolutions"].counts.rules) == ["judge:quality", "judge:equal"]  # equality last


def test_flan_expansion_with_a_judge_refuses_before_writing_anything(tmp_path):
    """FLAN expansion runs no model, so a judge in its config cannot judge: refused before the folder is made."""
    from sprout.config.loader import load_config
    from sprout.core.errors import UserError
    from sprout.runs.synth import FlanRunConfig, run_flan

    config = tmp_path / "flan.yaml"
    config.write_text("flan: {tasks: [sentiment]}\nfilters:\n  judges: [{name: quality, prompt: judge/quality}]\n")
    cfg = load_config(config, [f"out_dir={tmp_path / 'judged'}"], model=FlanRunConfig)
    with pytest.raises(UserError, match="needs a model, and this command runs none"):
        run_flan(cfg)
    assert not (tmp_path / "judged").exists()  # refused before the run's folder was made
