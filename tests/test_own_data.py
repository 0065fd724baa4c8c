"""A user's own datasets through `sprout filter` and `sprout dedup`, in the shapes real datasets have: a converted
classification set (one instruction, many distinct inputs, a few stories from two feeds), inverted FLAN rows (one
template, no input), `messages` rows. Rows are written here, by us, from pools of our own phrases."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from sprout.filters.rouge_scoring import rouge_l
from tests.conftest import write
from tests.test_cli import sprout
from tests.test_row_dedup import ref_greedy

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
QUESTION = "What is the topic of this news article? Answer with one of: World, Sports, Business, Sci/Tech."
LEADS = {
    "World": ["Flooding along the northern delta forced thousands of families to leave their villages",
              "Leaders of the coastal states met in the capital to settle a long fishing dispute",
              "A ceasefire between the two border provinces held through its first full week",
              "Election officials began the recount of ballots in the mountain districts",
              "The foreign ministry recalled its ambassador after a row over visas",
              "Aid convoys reached the island for the first time since the cyclone"],
    "Sports": ["The home side came back from two goals down to win the cup final in extra time",
               "A teenage sprinter broke the national record in the hundred metres heats",
               "The veteran goalkeeper announced he will retire at the end of the season",
               "Rain delayed the opening day of the test match for nearly four hours",
               "The cycling team lost its leader to a crash on the final mountain stage",
               "Tickets for the winter derby sold out within twenty minutes"],
    "Business": ["Shares in the shipping group fell sharply after a profit warning",
                 "The central bank left interest rates unchanged for a third month",
                 "A regional airline agreed to buy a rival carrier in a cash deal",
                 "Retail sales rose more than expected during the holiday quarter",
                 "The carmaker will cut a fifth of its office jobs over two years",
                 "Coffee prices climbed to a ten year high after a poor harvest"],
    "Sci/Tech": ["Astronomers spotted a comet that will pass close to the sun next spring",
                 "A new battery design kept its charge after thousands of cycles in lab tests",
                 "The space agency delayed the launch of its lunar lander by a month",
                 "Researchers trained a small model to read handwritten census records",
                 "A software flaw left millions of home routers open to attackers",
                 "Engineers tested a bridge sensor that warns of cracks before they spread"],
}
DETAILS = ["officials said on Monday", "according to a statement released late on Friday",
           "in a move few analysts had expected", "despite warnings from local groups",
           "after months of talks behind closed doors", "as crowds gathered outside",
           "the third such event this year", "while critics called the step overdue",
           "ahead of a vote planned for next week", "with a full report due in the autumn"]
VOICES = ["a local teacher", "the mayor", "one union leader", "a retired nurse", "two students", "a shop owner",
          "the opposition spokesman", "an economist at a small bank", "a farmer from the valley", "the coach"]
REACTIONS = ["welcomed the news but asked for patience", "said the timing could hardly be worse",
             "called it a turning point for the region", "warned that the details still matter",
             "admitted nobody had seen this coming", "promised to follow every step closely",
             "described the mood as tense but hopeful", "questioned who will pay in the end"]
CLOSERS = ["More updates will follow as the story develops.", "Neither side answered requests for comment.",
           "Observers expect further news within days.", "The figures have not been independently confirmed.",
           "A spokesperson declined to give more details.", "Reactions on social media were mixed.",
           "The decision can still be appealed.", "Several experts urged caution."]


def article(rng: random.Random, label: str, written: dict[str, list[str]]) -> str:
    """A story of our own from the label's leads and shared phrases, drawn again until it is no near-duplicate of a
    story of its label written so far (ROUGE-L <= 0.6): the fixture's only near-duplicates are the planted ones."""
    while True:
        text = (f"{rng.choice(LEADS[label])}, {rng.choice(DETAILS)}. {rng.choice(VOICES).capitalize()} "
                f"{rng.choice(REACTIONS)}. {rng.choice(CLOSERS)} Reported by desk {rng.randint(1, 99)}.")
        if all(rouge_l(other, text) <= 0.6 for other in written.setdefault(label, [])):
            written[label].append(text)
            return text


def classification_set(planted: int = 5) -> tuple[list[dict], list[int]]:
    """200 rows sharing one question; `planted` stories appear twice (the second copy from another feed, one word
    changed) — the only near-duplicates. Returns the rows and the indexes of the planted copies."""
    rng, written, rows = random.Random(3), {}, []
    labels = [label for label in LEADS for _ in range(50)]
    rng.shuffle(labels)
    for label in labels[: 200 - planted]:
        rows.append({"instruction": QUESTION, "input": article(rng, label, written), "output": label})
    # Each copy goes somewhere after its original; order by (position, copy after original) in one pass, so a copy
    # is never copied again and every original keeps its one twin.
    placed = [((i, 0), row) for i, row in enumerate(rows)]
    for k in rng.sample(range(len(rows)), planted):
        words = rows[k]["input"].split()
        words[-1] = f"{int(words[-1].rstrip('.')) + 100}."  # "Reported by desk 142." instead of "desk 42."
        placed.append(((rng.randint(k, len(rows) - 1), 1), {**rows[k], "input": " ".join(words)}))
    placed.sort(key=lambda item: item[0])
    return [row for _, row in placed], [i for i, (key, _) in enumerate(placed) if key[1]]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_classification_fixture_has_no_near_duplicates_but_the_planted_ones():
    """Checked with rouge-score itself: the fixture's stories differ (inputs <= 0.7) except each planted copy."""
    rows, planted = classification_set()
    assert len(rows) == 200 and len(planted) == 5
    for i, row in enumerate(rows):
        twins = [j for j in range(i) if rows[j]["output"] == row["output"]
                 and SCORER.score(rows[j]["input"], row["input"])["rougeL"].fmeasure > 0.7]
        assert len(twins) == (i in planted), (i, twins)


def test_filter_keeps_every_distinct_row_of_a_converted_classification_set(tmp_path):
    rows, planted = classification_set()
    source = write(tmp_path / "news.jsonl", jsonl(rows))
    out = tmp_path / "filtered"
    result = sprout("filter", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rejects = read_jsonl(out / "rejected.jsonl")
    assert sorted(int(r["record"]["lineage"]["operation"].split(":")[1]) - 1 for r in rejects) == planted
    assert {r["rule"] for r in rejects} == {"rouge_l"}
    assert all("in every field" in r["reason"] for r in rejects)
    kept = read_jsonl(out / "kept.jsonl")
    assert kept == [row for i, row in enumerate(rows) if i not in planted]  # the user's rows, as written
    assert [r["input"] for r in read_jsonl(out / "examples.jsonl")] == [r["input"] for r in kept]
    report = json.loads((out / "report.json").read_text())
    assert "max_instances" not in report["stages"]["rows"]["rules"]  # no cap unless the user asks for one
    assert report["warnings"] == [] and "warning" not in result.stdout.lower()


def test_a_rule_dropping_most_rows_says_so_with_the_key_to_change(tmp_path):
    rows, _ = classification_set()
    source = write(tmp_path / "news.jsonl", jsonl(rows))
    out = tmp_path / "by-instruction"
    result = sprout("filter", str(source), "--out", str(out), "--set", "filters.dedup_on=instruction")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out / "kept.jsonl")) == 1  # Self-Instruct's task-level rule: one row per instruction
    line = "rule rouge_l (rows) dropped 199 of the 200 it checked (100%)"
    report = json.loads((out / "report.json").read_text())
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith(line)
    assert "filters.dedup_on" in report["warnings"][0]
    for text in (" ".join(result.stdout.split()), (out / "report.md").read_text(), (out / "report.html").read_text()):
        assert line in text and "filters.dedup_on" in text


def test_max_instances_caps_rows_per_instruction_only_when_asked(tmp_path):
    rows, _ = classification_set(planted=0)
    source = write(tmp_path / "news.json", json.dumps(rows))
    out = tmp_path / "capped"
    result = sprout("filter", str(source), "--out", str(out), "--set", "filters.instance_rules=[max_instances, "
                    "empty_output]", "--set", "filters.max_instances_per_task=30")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "kept.json").read_text()) == rows[:30]  # the input's format: a JSON array
    assert not (out / "kept.jsonl").exists()
    assert "rule max_instances (rows) dropped 170 of the 200" in " ".join(result.stdout.split())
    assert "filters.max_instances_per_task" in " ".join(result.stdout.split())


def test_inverted_flan_rows_keep_their_distinct_outputs(tmp_path):
    """Inverted FLAN rows from one template: the instruction is the template around a three-word headline (so
    instructions alone look alike), no input, and a distinct article as the output: every row is kept."""
    leads = [lead for leads in LEADS.values() for lead in leads]
    rows = [{"instruction": f"Write a short news article that fits this headline, in plain words: "
                            f"{' '.join(lead.split()[-3:])}.", "input": "",
             "output": f"{lead}, {DETAILS[i % len(DETAILS)]}. {CLOSERS[i % len(CLOSERS)]}"}
            for i, lead in enumerate(leads)]
    first, rest = rows[4]["output"].split(" ", 1)
    rows.append({**rows[4], "output": f"{first} still {rest}"})  # one word added
    source = write(tmp_path / "flan.jsonl", jsonl(rows))
    out = tmp_path / "flan-out"
    assert sprout("filter", str(source), "--out", str(out)).returncode == 0
    assert read_jsonl(out / "kept.jsonl") == rows[:-1]
    (reject,) = read_jsonl(out / "rejected.jsonl")
    assert reject["rule"] == "rouge_l" and reject["record"]["output"] == rows[-1]["output"]
    by_instruction = tmp_path / "by-instruction"
    assert sprout("filter", str(source), "--out", str(by_instruction), "--set",
                  "filters.dedup_on=instruction").returncode == 0
    assert len(read_jsonl(by_instruction / "kept.jsonl")) < len(rows) // 2  # the task-level rule eats them


def test_messages_rows_are_filtered_and_kept_as_written(tmp_path):
    system = {"role": "system", "content": "You are a concise assistant."}
    rows = [
        {"messages": [{"role": "user", "content": "Name three rivers in Africa."},
                      {"role": "assistant", "content": "The Nile, the Congo and the Niger."}]},
        {"messages": [system, {"role": "user", "content": "Name three rivers in Africa."},
                      {"role": "assistant", "content": "The Nile, the Congo and the Niger."}]},  # its own system
        {"messages": [{"role": "user", "content": "Name three large rivers in Africa."},
                      {"role": "assistant", "content": "The Nile, the Congo and the Niger."}]},  # one word added
        {"messages": [{"role": "user", "content": "Plan a picnic for us."},
                      {"role": "assistant", "content": "Bring bread."},
                      {"role": "user", "content": "Now for ten people."},
                      {"role": "assistant", "content": "Bring ten loaves, cheese and fruit for everyone."}]},
        {"messages": [{"role": "user", "content": "Say something about the moon."}]},  # no answer
        {"messages": [{"role": "user", "content": "Is this review positive? 'Cold soup, slow staff.'"},
                      {"role": "assistant", "content": "No"}]},
        {"messages": [{"role": "user", "content": "Is this review positive? 'Cold soup, slow staff.'"},
                      {"role": "assistant", "content": "Yes"}]},  # the same question answered both ways
    ]
    source = write(tmp_path / "chat.jsonl", jsonl(rows))
    out = tmp_path / "chat-out"
    result = sprout("filter", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert read_jsonl(out / "kept.jsonl") == [rows[0], rows[1], rows[3]]
    records = read_jsonl(out / "examples.jsonl")
    assert records[1]["input"] == "system: You are a concise assistant."
    assert records[2]["instruction"] == "Plan a picnic for us." and records[2]["output"].startswith("Bring ten loaves")
    assert "assistant: Bring bread.\n\nuser: Now for ten people." == records[2]["input"]
    rejects = {r["record"]["lineage"]["operation"]: r["rule"] for r in read_jsonl(out / "rejected.jsonl")}
    assert rejects == {"chat.jsonl:3": "rouge_l", "chat.jsonl:5": "empty_output", "chat.jsonl:6":
                       "conflicting_outputs", "chat.jsonl:7": "conflicting_outputs"}


@pytest.mark.parametrize("bad, message", [
    ({"messages": "hi"}, "messages: expected a non-empty list"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0]: expected {role: system|user|assistant"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "messages: no user turn with text"),
])
def test_bad_messages_rows_name_their_line(tmp_path, bad, message):
    good = {"messages": [{"role": "user", "content": "Hi there."}, {"role": "assistant", "content": "Hello!"}]}
    source = write(tmp_path / "chat.jsonl", jsonl([good, bad]))
    result = sprout("filter", str(source), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and f"{source}:2: {message}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_dedup_on_rows_of_a_classification_set(tmp_path):
    rows, planted = classification_set()
    source = write(tmp_path / "news.jsonl", jsonl(rows))
    result = sprout("dedup", str(source), "--out", str(tmp_path / "kept.jsonl"))
    assert result.returncode == 0, result.stderr
    assert read_jsonl(tmp_path / "kept.jsonl") == [row for i, row in enumerate(rows) if i not in planted]
    rejects = read_jsonl(tmp_path / "kept.rejected.jsonl")
    assert [r["line"] - 1 for r in rejects] == planted
    assert all(r["scores"]["instruction"] == 1.0 and r["scores"]["output"] == 1.0 for r in rejects)
    assert all(rows[r["match_line"] - 1]["output"] == r["row"]["output"] for r in rejects)
    by_input = sprout("dedup", str(source), "--out", str(tmp_path / "ii.jsonl"), "--on", "instruction+input")
    # Without the output, stories of two labels that read alike count too: exactly what pairwise rouge-score says.
    expected = ref_greedy([(r["instruction"], r["input"]) for r in rows], 0.7)
    assert by_input.returncode == 0 and f"kept {len(expected)}, dropped {200 - len(expected)} " in by_input.stdout
    assert read_jsonl(tmp_path / "ii.jsonl") == [rows[i] for i in expected]
    both = sprout("dedup", str(source), "--out", str(tmp_path / "x.jsonl"), "--on", "all", "--field", "input")
    assert both.returncode == 2 and "--field and --on" in both.stderr
    unknown = sprout("dedup", str(source), "--out", str(tmp_path / "x.jsonl"), "--on", "everything")
    assert unknown.returncode == 2 and "--on 'everything'" in unknown.stderr
