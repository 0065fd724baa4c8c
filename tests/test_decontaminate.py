"""Decontamination: planted eval overlaps are dropped with the n-gram and eval item named, near-misses are kept; the
`sprout decontaminate` command on sprout records and Alpaca files; the `decontamination` filter rule."""

from __future__ import annotations

import json
import random

import pytest

from sprout.config.filters import FilterConfig
from sprout.config.loader import load_config
from sprout.config.run import DataConfig
from sprout.core.errors import UserError
from sprout.core.records import Lineage, Record
from sprout.filters.build import build_filters, build_stage
from sprout.filters.decontamination_index import DecontaminationIndex, EvalText, scan, tokens
from sprout.filters.eval_files import build_index
from tests.conftest import write
from tests.test_cli import sprout

QUESTION = ("A farmer plants three rows of tomatoes and two rows of beans in the spring; if each row yields forty "
            "kilograms, how many kilograms does the farm harvest in total by the end of the summer?")
Q_TOKENS = tokens(QUESTION)  # 37 tokens
EVAL_ROWS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": QUESTION, "choices": ["200 kilograms", "150", "250", "100"], "answer": "A"},
    {"messages": [{"role": "user", "content": "Describe the migration route of the arctic tern from Greenland to "
                                              "the Weddell Sea and back again every single year."}]},
]


def span(start: int, size: int) -> list[str]:
    return Q_TOKENS[start:start + size]


@pytest.fixture
def eval_file(tmp_path):
    return write(tmp_path / "mmlu_like.jsonl", "".join(json.dumps(r) + "\n" for r in EVAL_ROWS))


@pytest.fixture
def index(eval_file):
    return build_index([eval_file])[0]


def test_tokens_ignore_case_punctuation_spacing_and_width():
    assert tokens("Hello,   WORLD!!\n it's  foo_bar-baz 3.14") == ["hello", "world", "it", "s", "foo", "bar", "baz",
                                                                    "3", "14"]
    assert tokens("ＨＥＬＬＯ Straße") == tokens("hello STRASSE")  # NFKC and casefold
    assert tokens("天空是蓝色的") == list("天空是蓝色的")  # CJK: a token per character
    assert tokens("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # combining vowel signs stay inside the word


def test_planted_13gram_in_instruction_caught_despite_case_punctuation_and_spacing(index, eval_file):
    words = span(5, 13)  # "two rows of beans in the spring if each row yields forty kilograms"
    disguised = " ".join(w.upper() if i % 3 == 0 else w + ("," if i % 4 == 0 else "") for i, w in enumerate(words))
    match = index.find(f"Solve this:   {disguised.replace(' ', '  ', 3)}... show your work.", "instruction")
    assert match is not None
    assert match.ngram == " ".join(words)
    assert match.eval.where == f"{eval_file}:2" and match.eval.field == "question"
    reason = match.reason()
    assert f"13-gram {' '.join(words)!r} in instruction matches {eval_file}:2 (question)" in reason


def test_overlap_in_input_and_in_nested_eval_strings_caught(index, eval_file):
    record = Record(instruction="Answer the question.", input=" ".join(span(20, 15)) + "?", output="x",
                    lineage=Lineage(generator="test"))
    stage = build_stage("rows", ["decontamination"], FilterConfig(decontaminate_against=[eval_file]))
    accepted, rejected, _ = stage.run([record])
    assert accepted == [] and rejected[0].rule == "decontamination"
    assert "in input matches" in rejected[0].reason
    # a `messages` eval item: its nested content is indexed as messages[0].content
    match = index.find("Please describe THE MIGRATION ROUTE of the Arctic tern from Greenland to the Weddell sea.")
    assert match.eval.where == f"{eval_file}:3" and match.eval.field == "messages[0].content"


@pytest.mark.parametrize("text", [
    " ".join(span(5, 12)) + " and then some unrelated words here",  # only 12 tokens shared
    " ".join(span(5, 6) + ["peas"] + span(12, 6)),  # a 13-gram with one word changed
    " ".join(span(5, 6) + [span(5, 13)[7], span(5, 13)[6]] + span(13, 5)),  # two words swapped
    " ".join(reversed(span(0, 30))),  # the same words reordered
])
def test_near_misses_are_kept(index, text):
    assert index.find(text, "instruction") is None


def test_n_is_configurable(eval_file):
    ten = "Quick question: " + " ".join(span(3, 10)) + ", thanks."
    assert build_index([eval_file], n=13)[0].find(ten) is None
    assert build_index([eval_file], n=8)[0].find(ten).ngram == " ".join(span(3, 8))


def test_short_eval_texts_matched_whole_or_skipped(tmp_path):
    path = write(tmp_path / "eval.txt", "What is the boiling point of water at sea level?\nParis\n\nThe city.\n")
    index, stats = build_index([path])
    assert (stats[0].items, stats[0].whole, stats[0].skipped_short) == (3, 1, 2)
    match = index.find("Quick: what is the BOILING point of water, at sea level? Explain.", "input")
    assert match.whole and match.eval.where == f"{path}:1"
    assert "whole eval text of 10 tokens" in match.reason()
    assert index.find("what is the boiling point of water at sea") is None  # not the whole text
    assert index.find("Paris is the city.") is None  # under min_tokens: not indexed


def test_hash_hits_are_verified():
    index = DecontaminationIndex(n=3, min_tokens=3)
    index.add(EvalText("e.txt", 1, "", "alpha beta gamma delta"))
    index.grams[hash(("x", "y", "z"))] = 0  # a forged collision: the eval text does not hold "x y z"
    assert index.find("x y z") is None
    assert index.find("beta gamma delta").ngram == "beta gamma delta"


def _record_line(instruction: str, input_: str = "") -> str:
    lineage = Lineage(generator="self_instruct", operation="input_first", task_id="t1", seed_ids=["seed_task_1"],
                      model="transformers:smollm2", sampling={"temperature": 0.7})
    return Record(instruction=instruction, input=input_, output="An answer.", lineage=lineage).to_json() + "\n"


def test_cli_on_sprout_records(tmp_path, eval_file):
    lines = [_record_line("Give three tips for staying healthy in winter."),
             _record_line("Solve: " + " ".join(span(10, 16)).upper()),
             _record_line("Translate the sentence into French.", "Describe the migration route of the Arctic tern "
                          "from Greenland to the Weddell Sea."),
             _record_line("Name a fruit that is " + " ".join(span(0, 12)))]
    source = write(tmp_path / "examples.jsonl", "".join(lines))
    result = sprout("decontaminate", str(source), "--against", str(eval_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("read 4, kept 2, dropped 2")
    kept = (tmp_path / "examples.decontaminated.jsonl").read_text().splitlines()
    assert kept == [lines[0].strip(), lines[3].strip()]  # rows as they were, lineage and all
    rejects = [json.loads(x) for x in (tmp_path / "examples.decontaminated.rejected.jsonl").read_text().splitlines()]
    assert [(r["rule"], r["line"], r["field"]) for r in rejects] == [("decontamination", 2, "instruction"),
                                                                     ("decontamination", 3, "input")]
    assert rejects[0]["eval"] == {"file": str(eval_file), "line": 2, "field": "question"}
    assert rejects[0]["ngram"] == " ".join(span(10, 13)) and rejects[0]["ngram"] in rejects[0]["reason"]
    assert rejects[1]["eval"]["line"] == 3 and rejects[1]["record"]["lineage"]["task_id"] == "t1"
    report = json.loads((tmp_path / "examples.decontaminated.report.json").read_text())
    assert report["read"] == report["kept"] + report["dropped"] == 4
    assert report["eval_files"][0]["dropped"] == 2 and report["dropped_by_field"] == {"instruction": 1, "input": 1}
    assert {t["eval"] for t in report["top_eval_items"]} == {f"{eval_file}:2", f"{eval_file}:3"}
    assert "Most matched eval items" in (tmp_path / "examples.decontaminated.report.md").read_text()
    again = sprout("decontaminate", str(source), "--against", str(eval_file))
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr


def test_cli_on_alpaca_json_with_two_eval_files_and_n(tmp_path, eval_file):
    other = write(tmp_path / "other.txt", "the quick brown fox jumps over the lazy dog near the old river bank\n")
    rows = [{"instruction": "Write on a fox.", "input": "The quick brown fox jumps over the lazy dog", "output": "."},
            {"instruction": "Explain it: " + " ".join(span(2, 9)), "input": "", "output": "."},
            {"instruction": "Say hello.", "input": "", "output": "Hello."}]
    source = write(tmp_path / "alpaca_data.json", json.dumps(rows, indent=2))
    out = tmp_path / "clean" / "alpaca.json"
    args = ("decontaminate", str(source), "-a", str(eval_file), "-a", str(other), "--out", str(out))
    assert sprout(*args).stdout.startswith("read 3, kept 3, dropped 0")
    result = sprout(*args, "--n", "8", "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == [rows[2]]  # still a JSON array
    report = json.loads((tmp_path / "clean" / "alpaca.report.json").read_text())
    assert [f["dropped"] for f in report["eval_files"]] == [1, 1] and report["n"] == 8
    assert report["read"] == report["kept"] + report["dropped"]


@pytest.mark.parametrize(("which", "text", "expected"), [
    ("input", '{"instruction": "Hi there friend."}\n{"instruction": 5}\n', "{input}:2: field 'instruction' holds"),
    ("input", '{"instruction": "Hi there friend."}\n{oops\n', "{input}:2: invalid JSON"),
    ("input", '{"prompt": "Hi there friend."}\n', "{input}:1: no field 'instruction' or 'input'"),
    ("eval", '{"question": "fine"}\n[1, 2\n', "{eval}:2: invalid JSON"),
    ("eval", "", "holds no items"),
])
def test_cli_bad_files_exit_2_naming_the_line_and_write_nothing(tmp_path, which, text, expected):
    good_input = '{"instruction": "Hi there friend.", "input": ""}\n'
    source = write(tmp_path / "in.jsonl", text if which == "input" else good_input)
    evals = write(tmp_path / "eval.jsonl", text if which == "eval" else '{"question": "Hello world."}\n')
    result = sprout("decontaminate", str(source), "--against", str(evals))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected.format(input=source, eval=evals) in " ".join(result.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.jsonl", "in.jsonl"]


def test_cli_missing_eval_file_and_eval_field(tmp_path, eval_file):
    source = write(tmp_path / "in.jsonl", '{"instruction": "Hi there friend."}\n')
    result = sprout("decontaminate", str(source), "--against", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2 and "nope.jsonl: no such file" in result.stderr
    result = sprout("decontaminate", str(source), "--against", str(eval_file), "--eval-field", "question")
    assert result.returncode == 2 and f"{eval_file}:3: no field 'question'" in " ".join(result.stderr.split())
    assert not (tmp_path / "in.decontaminated.jsonl").exists()


def test_scale_finds_exactly_the_planted_rows():
    """100k rows x 10k eval items with a Zipf-like vocabulary: exactly the planted rows are dropped."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(20_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    cum = [0.0]
    for w in weights:
        cum.append(cum[-1] + w)
    cum = cum[1:]
    items = [" ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(15, 60))) for _ in range(10_000)]
    rows = [{"instruction": " ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(5, 25))),
             "input": " ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(0, 25)))} for _ in range(100_000)]
    planted = sorted(rng.sample(range(len(rows)), 50))
    for k, i in enumerate(planted):
        words = rng.choice(items).split()
        start = rng.randint(0, len(words) - 13)
        field = ("instruction", "input")[k % 2]
        rows[i][field] = f"zz0 {' '.join(words[start:start + 13]).upper()} zz1 {rows[i][field]}"
    index = DecontaminationIndex()
    for line, item in enumerate(items, 1):
        index.add(EvalText("eval.txt", line, "", item))
    result = scan(index, list(enumerate(rows)), ("instruction", "input"))
    assert [line for line, _, _ in result.dropped] == planted


def test_config_errors_name_the_key(tmp_path, eval_file):
    config = write(tmp_path / "filter.yaml", "filters:\n  instance_rules: [empty_output, decontamination]\n")
    with pytest.raises(UserError) as error:
        load_config(config, model=DataConfig)
    assert "instance_rules lists `decontamination` but `decontaminate_against` names no eval file" in str(error.value)
    with pytest.raises(UserError) as error:
        load_config(config, [f"filters.decontaminate_against=[{tmp_path / 'missing.jsonl'}]"], model=DataConfig)
    assert "key 'filters.decontaminate_against.0'" in str(error.value) and "missing.jsonl: no such file" in str(
        error.value)
    with pytest.raises(UserError) as error:
        load_config(None, ["generators.flan={tasks: [sentiment], rules: [decontamination]}"], model=DataConfig)
    assert "generators.flan.rules lists `decontamination`" in str(error.value)
    cfg = load_config(config, [f"filters.decontaminate_against=[{eval_file}]"], model=DataConfig)
    assert "decontamination" not in FilterConfig().task_rules + FilterConfig().instance_rules  # opt-in only
    filters = build_filters(cfg.filters.model_copy(update={"task_rules": ["decontamination"]}), [])
    task_rule = next(r for r in filters.tasks.rules if r.name == "decontamination")
    instance_rule = next(r for r in filters.instances.rules if r.name == "decontamination")
    assert task_rule.eval_index is instance_rule.eval_index  # built once, shared by the stages


def test_filter_command_with_the_rule(tmp_path, eval_file):
    rows = [{"instruction": "Give three tips for staying healthy.", "input": "", "output": "Sleep, eat, move."},
            {"instruction": "Work it out: " + " ".join(span(0, 20)), "input": "", "output": "200 kilograms."},
            {"instruction": "Name the largest ocean on Earth.", "input": "", "output": "The Pacific Ocean."}]
    source = write(tmp_path / "data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "filtered"
    base = ("filter", str(source), "--set", f"out_dir={out}", "--set", f"cache={tmp_path / 'c.sqlite'}",
            "--set", "filters.instance_rules=[empty_output, decontamination]")
    result = sprout(*base)
    assert result.returncode == 2 and "decontaminate_against" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    result = sprout(*base, "--set", f"filters.decontaminate_against=[{eval_file}]")
    assert result.returncode == 0, result.stderr
    kept = [json.loads(line)["instruction"] for line in (out / "examples.jsonl").read_text().splitlines()]
    assert kept == [rows[0]["instruction"], rows[2]["instruction"]]
    [reject] = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert reject["rule"] == "decontamination"
    assert reject["reason"].startswith(f"13-gram {' '.join(span(0, 13))!r} in instruction matches {eval_file}:2")
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["rows"]["rules"]["decontamination"]["dropped"] == 1
