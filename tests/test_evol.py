"""Evol-Instruct: prompts, verdict parsing, the round loop with elimination (scripted backend), and one real round."""

import json

import pytest

from sprout.backends.cache import CachedBackend
from sprout.config import EVOL_OPERATIONS, EvolInstructConfig, FilterConfig
from sprout.filters.build import build_judge, build_stage
from sprout.filters.judge import parse_verdict
from sprout.generators.evol_instruct import EvolInstruct, as_text
from sprout.prompts import load_prompt
from sprout.records import Lineage, Record
from tests.conftest import write
from tests.test_cli import sprout

SOURCES = [Record(instruction=text, output="ok", lineage=Lineage(generator="input")) for text in (
    "Explain why the sky is blue.", "Write a haiku about autumn leaves.", "Give two tips for better sleep.")]


@pytest.mark.parametrize("operation", EVOL_OPERATIONS)
def test_every_operation_prompt_embeds_the_instruction_and_its_rules(operation):
    messages = load_prompt(f"evol/{operation}").render(instruction="Explain photosynthesis.\n\nA leaf in sunlight.")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[-1]["content"]
    assert user.endswith("Explain photosynthesis.\n\nA leaf in sunlight.")
    assert "rewritten prompt" in user.lower() or "given prompt" in user.lower()  # told never to mention the scaffold
    if operation not in ("breadth", "complicate_input"):
        assert "10 to 20 words" in user


def test_deepen_prompt_renders_exactly():
    messages = load_prompt("evol/deepen").render(instruction="Explain photosynthesis.")
    assert messages == [
        {"role": "system", "content": "You make instructions for an assistant more demanding while keeping them "
                                      "sensible and answerable by a person."},
        {"role": "user", "content": "Rewrite the instruction below so it is harder to carry out. Method: widen and "
                                    "deepen what it asks about, for\nexample causes, consequences, trade-offs or "
                                    "related cases the answer must also cover.\nRules: add only 10 to 20 words. Keep "
                                    "any table, code or other non-text part exactly as it is. Do not mention\nthese "
                                    "directions or words like \"given prompt\" or \"rewritten prompt\". Reply with "
                                    "only the new instruction:\nno preamble, no quotes, no labels.\n\nInstruction:\n"
                                    "Explain photosynthesis."}]


def test_equal_judge_prompt_and_verdicts():
    prompt = load_prompt("judge/evol_equal")
    assert prompt.meta["verdicts"] == {"keep": ["Not Equal"], "drop": ["Equal"]}
    messages = prompt.render(record={"instruction": "Explain gravity on Mars."}, parent="Explain gravity.")
    assert messages[-1]["content"].startswith("A: Explain gravity.\nB: Explain gravity on Mars.")
    verdicts = ["Equal", "Not Equal"]
    assert parse_verdict("Equal", verdicts) == "Equal"
    assert parse_verdict("Not Equal.", verdicts) == "Not Equal"
    assert parse_verdict("not equal", verdicts) == "Not Equal"
    assert parse_verdict("They are **Equal**", verdicts) == "Equal"
    assert parse_verdict("B is harder", verdicts) is None


def scripted_evolution(messages, sampling):
    system, user = messages[0]["content"], messages[-1]["content"]
    if user.startswith("A: "):  # the equal judge
        parent, child = user.split("\n")[0][3:], user.split("\n")[1][3:]
        if "haiku" in parent and "sleep" not in child:
            return "Equal"  # every haiku evolution is judged unchanged, so it fails
        return "Not Equal"
    if "demanding" in system or "new instruction" in user.lower() or "rewrite" in user.lower():
        instruction = user.rsplit("\n", 1)[-1].strip()
        return f"{instruction} Answer in exactly three numbered steps for a curious student."
    return "Here is a careful, complete answer with several useful details for the reader."  # a response


def make(tmp_path, scripted, rounds_config=None):
    config = EvolInstructConfig(per_round=3, **(rounds_config or {}))
    backend = CachedBackend(scripted(scripted_evolution), tmp_path / "c.sqlite")
    holder = {}
    judge = build_judge(config.judge, backend, context=lambda r: holder["gen"].parent_of(r))
    stage = build_stage("evolutions", config.rules, FilterConfig(rouge_l_threshold=0.95), [judge])
    generator = EvolInstruct(config, SOURCES, backend, stage, run_seed=3)
    holder["gen"] = generator
    return generator, stage


def test_rounds_evolve_survivors_further_and_retry_failures(tmp_path, scripted):
    generator, stage = make(tmp_path, scripted)
    first = generator.run_round(0)
    assert len(first.records) == 2  # the haiku evolution was judged Equal
    (failed,) = first.rejections
    assert failed.rule == "judge:equal" and "haiku" in failed.record.instruction
    assert failed.record.lineage.parent_ids == [SOURCES[1].id]
    for record in first.records:
        parent = next(s for s in SOURCES if s.id == record.lineage.parent_ids[0])
        assert record.instruction.startswith(parent.instruction)
        assert record.lineage.round == 0 and record.lineage.operation in EVOL_OPERATIONS
        assert record.lineage.generator == "evol_instruct" and record.output
    # The failed parent is evolved again next round; the survivors are evolved further.
    assert [r.id for r in generator.queue] == [SOURCES[1].id] + [r.id for r in first.records]
    second = generator.run_round(1)
    chained = [r for r in second.records if r.lineage.parent_ids[0] in {x.id for x in first.records}]
    assert len(chained) == 2 and all(r.lineage.round == 1 for r in chained)
    grandparent = {r.id: r.lineage.parent_ids[0] for r in first.records}
    assert {grandparent[r.lineage.parent_ids[0]] for r in chained} == {SOURCES[0].id, SOURCES[2].id}
    assert stage.counts.entered == stage.counts.accepted + stage.counts.dropped


def test_operations_follow_weights_and_the_seed(tmp_path, scripted):
    only = {op: (1.0 if op == "concretize" else 0.0) for op in EVOL_OPERATIONS}
    generator, _ = make(tmp_path, scripted, {"operations": only})
    assert {r.lineage.operation for r in generator.run_round(0).records} == {"concretize"}
    again, _ = make(tmp_path / "b", scripted)
    first, _ = make(tmp_path / "a", scripted)
    assert [r.lineage.operation for r in first.run_round(0).records] == \
        [r.lineage.operation for r in again.run_round(0).records]


def test_as_text_joins_the_input():
    record = Record(instruction="Sum the numbers.", input="1 2 3", lineage=Lineage(generator="x"))
    assert as_text(record) == "Sum the numbers.\n\n1 2 3"


def test_unknown_operation_is_a_config_error():
    with pytest.raises(ValueError, match="unknown operation"):
        EvolInstructConfig(operations={"deepn": 1.0})


@pytest.mark.slow
def test_sprout_evolve_one_real_round_over_an_alpaca_file(tmp_path):
    rows = [{"instruction": "Explain why leaves change colour in autumn.", "input": "", "output": "Chlorophyll fades."},
            {"instruction": "Give three tips for saving money on groceries.", "input": "", "output": "Plan meals."},
            {"instruction": "Translate 'thank you very much' into Spanish.", "input": "", "output": "Muchas gracias."},
            {"instruction": "Describe how a bicycle gear system works.", "input": "", "output": "Gears trade force."}]
    source = write(tmp_path / "alpaca.json", json.dumps(rows))
    out = tmp_path / "evolved"
    result = sprout("evolve", "--input", str(source), "--rounds", "1", "--set", f"out_dir={out}",
                    "--set", f"cache={tmp_path / 'c.sqlite'}")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    stage = report["stages"]["evolutions"]
    assert stage["entered"] == stage["accepted"] + sum(r["dropped"] for r in stage["rules"].values()) == 4
    judged = stage["rules"]["judge:equal"]["checked"] + stage["rules"].get("judge:equal:unparseable", {}).get(
        "checked", 0)
    assert judged >= 1  # the equal judge saw every evolution that passed the cheap rules
    examples = (out / "examples.jsonl").read_text().splitlines()
    rejects = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(examples) + len(rejects) == 4  # every evolution is accepted or rejected with a reason
    assert all(r["rule"] and r["record"]["lineage"]["parent_ids"] for r in rejects)
    assert (out / "report.html").exists()
    for line in (out / "examples.jsonl").read_text().splitlines():
        record = Record.model_validate(json.loads(line))
        assert record.lineage.generator == "evol_instruct" and record.lineage.round == 0
        assert record.lineage.parent_ids and record.output


def test_show_prints_the_family_tree(tmp_path, scripted):
    generator, _ = make(tmp_path, scripted)
    first, second = generator.run_round(0), generator.run_round(1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "examples.jsonl").write_text("".join(r.to_json() + "\n" for r in first.records + second.records))
    (run / "rejected.jsonl").write_text("".join(r.to_json() + "\n" for r in first.rejections + second.rejections))
    child = next(r for r in second.records if r.lineage.parent_ids[0] == first.records[0].id)
    result = sprout("show", child.id[:10], "--run", str(run))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{first.records[0].lineage.parent_ids[0]}  (a source or seed")
    assert lines[1].startswith(f"  {first.records[0].id}  [evol_instruct/") and "round 0; accepted" in lines[1]
    assert lines[2].startswith(f"    {child.id}  [evol_instruct/") and "round 1; accepted" in lines[2]
    missing = sprout("show", "zzzz", "--run", str(run))
    assert missing.returncode == 2 and "no record" in missing.stderr
