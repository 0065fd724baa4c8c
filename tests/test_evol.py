"""Evol-Instruct: prompts, verdict parsing, the round loop with elimination (scripted backend), and one real round."""

import json

import pytest

from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig
from sprout.core.parsing import parse_verdict
from sprout.core.prompts import load_prompt
from sprout.core.records import Lineage, Record
from sprout.generators.evol_instruct.config import EVOL_OPERATIONS, EvolInstructConfig
from sprout.generators.evol_instruct.generator import as_text, make_evolver
from sprout.io.dataset_io import read_records
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


ADDITIONS = [  # ten words each, as the prompts ask; a row's own, so rows' evolutions do not all end alike
    "Answer in exactly three numbered steps for a curious student.",
    "Mention one common mistake and explain how to avoid it.",
    "Keep every sentence short enough for a ten-year-old reader.",
    "Finish with a practical tip that anyone could try today.",
    "Use one example from history and one from daily life.",
    "Write it as a friendly letter to a younger cousin.",
    "Compare two viewpoints before giving your own final recommendation here.",
    "Include a brief list of sources a reader could check."]


def added_for(instruction: str) -> str:
    return ADDITIONS[sum(map(ord, instruction)) % len(ADDITIONS)]


LONG = ("Describe how a small town library can run a weekly reading club for teenagers, including how to choose "
        "the books and keep members coming back.")  # 26 words: + 10 words scores 0.84 against it
SOURCES = [*SOURCES, Record(instruction=LONG, output="ok", lineage=Lineage(generator="input"))]


def scripted_evolution(messages, sampling):
    system, user = messages[0]["content"], messages[-1]["content"]
    if user.startswith("A: "):  # the equal judge
        parent, child = user.split("\n")[0][3:], user.split("\n")[1][3:]
        if "haiku" in parent and "sleep" not in child:
            return "Equal"  # every haiku evolution is judged unchanged, so it fails
        return "Not Equal"
    if "demanding" in system or "new instruction" in user.lower() or "rewrite" in user.lower():
        instruction = user.rsplit("\n", 1)[-1].strip()
        return f"{instruction} {added_for(instruction)}"
    return "Here is a careful, complete answer with several useful details for the reader."  # a response


def make(tmp_path, scripted, rounds_config=None, script=scripted_evolution, sources=SOURCES):
    """The generator as `sprout evolve` builds it: the default threshold (0.7), the sources in the dedup pool."""
    config = EvolInstructConfig(**{"rounds": 2, **(rounds_config or {})})
    backend = CachedBackend(scripted(script), tmp_path / "c.sqlite")
    generator = make_evolver(config, FilterConfig(), sources, lambda _: backend, 3, dedup_against=sources)
    return generator, generator.stage


def test_every_row_is_attempted_each_round_survivors_evolve_further_and_failures_retry(tmp_path, scripted):
    generator, stage = make(tmp_path, scripted)
    first = generator.run_round(0)
    assert len(first.records) + len(first.rejections) == len(SOURCES) == generator.rounds[0]["attempted"]
    (failed,) = first.rejections  # the haiku evolution was judged Equal
    assert failed.rule == "judge:equal" and "haiku" in failed.record.instruction
    assert failed.record.lineage.parent_ids == [SOURCES[1].id]
    for record in first.records:
        parent = next(s for s in SOURCES if s.id == record.lineage.parent_ids[0])
        assert record.instruction == f"{parent.instruction} {added_for(parent.instruction)}"
        assert record.lineage.round == 0 and record.lineage.operation in EVOL_OPERATIONS
        assert record.lineage.generator == "evol_instruct" and record.output
    # The long instruction plus ten words scores above 0.7 against its own parent: kept, the parent is an ancestor.
    assert any(r.instruction.startswith(LONG) for r in first.records)
    assert generator.rounds[0] == {"round": 0, "attempted": 4, "evolved": 3, "eliminated": {"judge:equal": 1},
                                   "failed": 1, "retried_next_round": 1, "left_out": 0}
    # Next generation: each survivor in its row's place, the failed row as it was.
    evolved = {r.lineage.parent_ids[0]: r for r in first.records}
    assert [r.id for r in generator.generation] == [evolved[s.id].id if s.id in evolved else s.id for s in SOURCES]
    second = generator.run_round(1)
    assert len(second.records) + len(second.rejections) == len(SOURCES)
    chained = [r for r in second.records if r.lineage.parent_ids[0] in {x.id for x in first.records}]
    assert len(chained) == 3 and all(r.lineage.round == 1 for r in chained)
    for record in chained:
        root = record.lineage.chain[0]
        assert record.lineage.root_id == root and record.lineage.chain == [root, record.lineage.parent_ids[0]]
        assert len(record.lineage.operations) == 2 and record.lineage.operations[-1] == record.lineage.operation
    retry = next(r for r in second.rejections if r.record.lineage.parent_ids == [SOURCES[1].id])
    assert retry.record.lineage.sampling["seed"] != failed.record.lineage.sampling["seed"]  # a new sampling seed
    assert generator.rounds[1]["retried_next_round"] == 0  # the last of the 2 rounds: nothing is retried after it
    assert generator.outcome() == {"rows": 4, "left_out": 0, "rounds": 2, "evolved_in_rounds": {"0": 1, "2": 3}}
    assert stage.counts.entered == stage.counts.accepted + stage.counts.dropped


def test_a_retried_row_gets_a_new_operation_draw_each_round(tmp_path, scripted):
    always_equal = lambda messages, sampling: "Equal" if messages[-1]["content"].startswith("A: ") else \
        scripted_evolution(messages, sampling)  # noqa: E731
    generator, _ = make(tmp_path, scripted, {"rounds": 6}, script=always_equal)
    drawn = [[r.record.lineage.operation for r in generator.run_round(n).rejections] for n in range(6)]
    assert all(len(ops) == len(SOURCES) for ops in drawn)  # every row failed and was retried every round
    per_row = list(zip(*drawn, strict=True))
    assert all(len(set(ops)) > 1 for ops in per_row)  # each row drew again, not the same operation every time


def test_rows_evolving_into_the_same_instruction_are_still_caught(tmp_path, scripted):
    twins = [Record(instruction=t, output="ok", lineage=Lineage(generator="input")) for t in (
        "Write a short poem about the sea at night.", "Write a short poem about the sea at dawn.")]
    same = lambda messages, sampling: "Not Equal" if messages[-1]["content"].startswith("A: ") else \
        "Write a short sonnet about the sea, using three sea birds as images." if "rewrite" in \
        messages[-1]["content"].lower() or "new instruction" in messages[-1]["content"].lower() else "A poem."  # noqa
    generator, _ = make(tmp_path, scripted, script=same, sources=twins)
    result = generator.run_round(0)
    assert len(result.records) == 1 and [r.rule for r in result.rejections] == ["rouge_l"]


def test_scaffold_words_of_the_prompts_eliminate_an_evolution(tmp_path, scripted):
    leaky = lambda messages, sampling: "Not Equal" if messages[-1]["content"].startswith("A: ") else \
        f"{messages[-1]['content'].rsplit(chr(10), 1)[-1]} Add only 10 to 20 words." if "rewrite" in \
        messages[-1]["content"].lower() or "new instruction" in messages[-1]["content"].lower() else "Sure."  # noqa
    generator, _ = make(tmp_path, scripted, {"operations": {"deepen": 1}}, script=leaky)
    result = generator.run_round(0)
    assert not result.records
    assert {r.rule for r in result.rejections} == {"scaffold_copy"}
    assert "add only 10 to 20 words" in result.rejections[0].reason


def test_the_per_round_cap_evolves_a_seeded_sample_and_counts_the_rest(tmp_path, scripted):
    generator, _ = make(tmp_path, scripted, {"per_round": 2})
    assert len(generator.generation) == 2 and len(generator.left_out) == 2
    again, _ = make(tmp_path / "again", scripted, {"per_round": 2})
    assert [r.id for r in generator.generation] == [r.id for r in again.generation]  # seeded
    for n in range(2):
        generator.run_round(n)
        fates = generator.rounds[-1]
        assert fates["attempted"] == 2 and fates["left_out"] == 2
    assert generator.outcome()["rows"] == 4 and generator.outcome()["left_out"] == 2


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


EVAL_STYLE = [  # an evaluation-style instruction set of our own: short questions and tasks, a few with an input
    ("Explain why leaves change colour in autumn.", ""), ("Give three tips for saving money on groceries.", ""),
    ("Translate the sentence into Spanish.", "Thank you very much for the lovely dinner."),
    ("Describe how a bicycle gear system works.", ""), ("What causes the tides on Earth?", ""),
    ("Summarize the paragraph in one sentence.", "The town built a new bridge last year. Traffic fell by half."),
    ("Write a haiku about a quiet harbour.", ""), ("List four common uses of vinegar at home.", ""),
    ("Why do cats purr?", ""), ("Suggest a name for a bakery that sells only bread.", ""),
    ("Classify the sentiment of the review as positive or negative.", "The soup was cold and the staff rude."),
    ("How does a refrigerator keep food cold?", ""), ("Write a polite email declining a meeting.", ""),
    ("Explain the rules of tic-tac-toe to a child.", ""), ("What is the capital of Australia?", ""),
    ("Give two arguments for learning a second language.", ""), ("Describe the smell of rain.", ""),
    ("Convert 5 kilometres to miles and show the working.", ""), ("Name three planets bigger than Earth.", ""),
    ("Rewrite the sentence in the passive voice.", "The committee approved the new budget."),
    ("What should a beginner pack for a day hike?", ""), ("Explain what a budget deficit is.", ""),
    ("Write a two-line rhyme about coffee.", ""), ("How do vaccines train the immune system?", ""),
]


@pytest.mark.slow
def test_sprout_evolve_an_evaluation_set_for_two_rounds_on_the_embedded_model(tmp_path):
    """Every row gets one attempt per round (attempts = rows x rounds), each attempt is one line, every row's fate
    is in the summary and the reports, and each record carries its chain."""
    rows = [{"instruction": i, "input": x, "output": "reference answer"} for i, x in EVAL_STYLE]
    source = write(tmp_path / "eval.json", json.dumps(rows))
    out, cache = tmp_path / "evolved", tmp_path / "c.sqlite"
    options = ["--set", f"cache={cache}", "--set", "evol_instruct.sampling.max_tokens=96",
               "--set", "evol_instruct.response_sampling.max_tokens=48"]
    result = sprout("evolve", "--input", str(source), "--rounds", "2", "--out", str(out), *options)
    assert result.returncode == 0, result.stderr[-2000:]
    examples = [Record.model_validate(json.loads(line)) for line in (out / "examples.jsonl").read_text().splitlines()]
    rejects = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(examples) + len(rejects) == len(rows) * 2  # one line per attempt: attempts = rows x rounds
    assert all(r["rule"] and r["record"]["lineage"]["parent_ids"] for r in rejects)
    report = json.loads((out / "report.json").read_text())
    stage = report["stages"]["evolutions"]
    assert stage["entered"] == stage["accepted"] + sum(r["dropped"] for r in stage["rules"].values()) == 48
    judged = stage["rules"]["judge:equal"]["checked"] + stage["rules"].get("judge:equal:unparseable", {}).get(
        "checked", 0)
    assert judged >= 1  # the equal judge saw every evolution that passed the cheap rules
    rounds = report["evol_rounds"]["rounds"]
    assert [r["attempted"] for r in rounds] == [24, 24] and [r["left_out"] for r in rounds] == [0, 0]
    for fates in rounds:
        assert fates["evolved"] + sum(fates["eliminated"].values()) == 24
    assert rounds[0]["retried_next_round"] == 24 - rounds[0]["evolved"]
    outcome = report["evol_rounds"]["outcome"]
    assert outcome["rows"] == 24 and sum(outcome["evolved_in_rounds"].values()) == 24
    survivors = {r.id: r for r in examples if r.lineage.round == 0}
    source_ids = {r.id for r in read_records(source)}
    for record in examples:
        assert record.lineage.generator == "evol_instruct" and record.output and record.lineage.root_id in source_ids
        assert record.lineage.chain[0] == record.lineage.root_id
        assert len(record.lineage.operations) == len(record.lineage.chain)
        if record.lineage.round == 1:  # evolved from a round-0 survivor, or a retry of its source row
            assert record.lineage.parent_ids[0] in survivors or record.lineage.parent_ids[0] in source_ids
    for text in ((out / "report.md").read_text(), (out / "report.html").read_text(), " ".join(result.stdout.split())):
        assert "Evol-Instruct generations" in text
    # --keep-original: the input rows beside their evolutions (the answers come from the cache).
    kept = tmp_path / "with-originals"
    again = sprout("evolve", "--input", str(source), "--rounds", "2", "--out", str(kept), "--keep-original", *options)
    assert again.returncode == 0, again.stderr[-2000:]
    lines = (kept / "examples.jsonl").read_text().splitlines()
    assert [json.loads(line)["instruction"] for line in lines[:24]] == [i for i, _ in EVAL_STYLE]
    assert lines[24:] == (out / "examples.jsonl").read_text().splitlines()


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
