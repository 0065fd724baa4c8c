import itertools
import json

import pytest
from rouge_score import rouge_scorer

from sprout.core.errors import UserError
from sprout.core.seeds import load_seeds, summarize
from tests.conftest import REPO, write

GENERAL = REPO / "seeds" / "general.jsonl"


def test_general_seed_set_is_valid_diverse_and_original_enough():
    tasks = load_seeds([GENERAL])
    counts = summarize(tasks)
    assert counts["tasks"] >= 120
    assert counts["classification"] >= 30
    assert len({t.id for t in tasks}) == len(tasks)
    assert all(t.instances and all(out for _, out in t.instances) for t in tasks)
    for task in tasks:
        if task.is_classification:
            assert task.labels, task.id
            assert all(label in task.instruction for label in task.labels), task.id  # the label set is stated
    assert 0.3 < counts["with_input"] / counts["tasks"] < 0.7  # both forms well represented


def test_no_two_seed_instructions_are_near_duplicates():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    instructions = [t.instruction for t in load_seeds([GENERAL])]
    worst = max(scorer.score(a, b)["rougeL"].fmeasure for a, b in itertools.combinations(instructions, 2))
    assert worst <= 0.7


def test_accepts_self_instruct_alpaca_jsonl_and_alpaca_array(tmp_path):
    si = write(tmp_path / "si.jsonl", json.dumps({"id": "t1", "name": "n", "instruction": "Say hi to me.",
                                                  "instances": [{"input": "", "output": "Hi"}],
                                                  "is_classification": False}) + "\n")
    alpaca_lines = write(tmp_path / "a.jsonl", json.dumps({"instruction": "Add the numbers.", "input": "1 2",
                                                           "output": "3"}) + "\n")
    alpaca_array = write(tmp_path / "b.json", json.dumps([{"instruction": "Name a colour.", "input": "",
                                                           "output": "Red"},
                                                          {"instruction": "Name a fruit.", "output": "Apple"}],
                                                         indent=2))
    tasks = load_seeds([si, alpaca_lines, alpaca_array])
    assert [t.instruction for t in tasks] == ["Say hi to me.", "Add the numbers.", "Name a colour.", "Name a fruit."]
    assert tasks[1].instances == (("1 2", "3"),)
    assert tasks[3].source.endswith("b.json:7")  # array items keep the line they start on


BAD_LINES = [
    ("{not json", "invalid JSON"),
    (json.dumps({"instruction": "", "output": "x"}), "instruction: is empty"),
    (json.dumps({"input": "x", "output": "y"}), "instruction: missing field"),
    (json.dumps({"instruction": 5, "output": "y"}), "instruction: Input should be a valid string"),
    (json.dumps({"instruction": "Do it now.", "instances": [{"input": "a"}]}), "instances.0.output: missing field"),
    (json.dumps({"instruction": "Do it now.", "instances": []}), "instances: List should have at least 1 item"),
    (json.dumps({"instruction": "Do it.", "instances": [{"output": "a"}], "is_classification": "yes"}),
     "is_classification: Input should be a valid boolean"),
    (json.dumps(["a list"]), "expected a JSON object"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_each_bad_line_is_reported_with_file_and_line(tmp_path, line, message):
    good = [json.dumps({"instruction": f"Name colour number {i}.", "output": "Red"}) for i in (1, 2)]
    path = write(tmp_path / "seeds.jsonl", f"{good[0]}\n{line}\n{good[1]}\n")
    with pytest.raises(UserError) as caught:
        load_seeds([path])
    details = caught.value.details
    assert len(details) == 1 and details[0].startswith(f"{path}:2: ") and message in details[0], details


def test_every_bad_line_in_every_file_is_listed_at_once(tmp_path):
    first = write(tmp_path / "one.jsonl", "{bad\n" + json.dumps({"instruction": "", "output": "x"}) + "\n")
    second = write(tmp_path / "two.jsonl", "")
    with pytest.raises(UserError) as caught:
        load_seeds([first, second, tmp_path / "missing.jsonl", tmp_path])
    details = caught.value.details
    assert details[0].startswith(f"{first}:1: invalid JSON")
    assert details[1].startswith(f"{first}:2: instruction")
    assert "no seed tasks" in details[2]
    assert "no such seed file" in details[3]
    assert "is a directory" in details[4]


def test_duplicate_ids_and_invalid_utf8(tmp_path):
    row = {"id": "same", "instruction": "Say hi to me.", "instances": [{"output": "Hi"}]}
    dup = write(tmp_path / "dup.jsonl", json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError) as caught:
        load_seeds([dup])
    assert caught.value.details == [f"{dup}:2: duplicate id 'same' (first at {dup}:1); ids must be unique."]
    alpaca = json.dumps({"instruction": "Name a colour.", "output": "Red"})
    twice = write(tmp_path / "twice.jsonl", f"{alpaca}\n{alpaca}\n")
    with pytest.raises(UserError) as caught:
        load_seeds([twice])
    assert caught.value.details == [f"{twice}:2: exact duplicate of {twice}:1; remove one of them."]
    broken = write(tmp_path / "latin1.jsonl", b'{"instruction": "ok", "output": "x"}\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(UserError) as caught:
        load_seeds([broken])
    assert caught.value.details[0].startswith(f"{broken}:2: not valid UTF-8")
