import json
import re

from sprout.backends.base import Completion
from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig
from sprout.core.seeds import load_seeds
from sprout.filters.build import build_filters
from sprout.generators.self_instruct.config import SelfInstructConfig
from sprout.generators.self_instruct.generator import SelfInstruct
from tests.conftest import REPO

SEEDS = load_seeds([REPO / "seeds" / "general.jsonl"])
NEW_TASKS = (" Suggest three names for a small bakery.\n10. Explain why leaves change colour in autumn.\n"
             "11. Is this sentence a question? Answer Question or Statement.\n12. Describe the picture on the wall.")


def script(messages, sampling):
    last = messages[-1]["content"]
    if messages[-1]["role"] == "assistant" and re.fullmatch(r"\d+\.", last):
        return NEW_TASKS
    if last == "Input:":
        return " <noinput>\nOutput: Crumb & Co, Rise Up, The Daily Loaf"
    if last == "Class label:":
        return " Question\nInput: Is it raining?\n\nClass label: Statement\nInput: It is raining."
    return "Yes" if "Question or Statement" in last else "No"


def make(tmp_path, scripted, reply=script, **overrides):
    config = SelfInstructConfig(**{"requests_per_batch": 2, "tasks_per_batch": 4, **overrides})
    backend = CachedBackend(scripted(reply), tmp_path / "cache.sqlite")
    filters = build_filters(FilterConfig(), [s.instruction for s in SEEDS])
    return SelfInstruct(config, SEEDS, backend, filters, run_seed=1), backend, filters


def test_prompts_show_six_seeds_and_machine_tasks_once_there_are_some(tmp_path, scripted):
    generator, backend, _ = make(tmp_path, scripted)
    generator.run_batch(0, needed=10)
    first_prompt = backend.inner.batches[0][0]
    numbered = re.findall(r"^(\d+)\. (.*)$", first_prompt[1]["content"], re.M)
    seed_instructions = {s.instruction for s in SEEDS}
    assert [int(n) for n, _ in numbered] == list(range(1, 9))
    assert all(text in seed_instructions for _, text in numbered)  # no machine tasks yet: 8 seeds
    generator.backlog.clear()
    generator.run_batch(1, needed=10)
    later = [b for b in backend.inner.batches if b[0][-1]["content"] == "9."][-1][0]
    shown = [t for _, t in re.findall(r"^(\d+)\. (.*)$", later[1]["content"], re.M)]
    machine = [t for t in shown if t not in seed_instructions]
    assert len(machine) == 2 and len(shown) == 8


def test_one_batch_end_to_end_with_lineage(tmp_path, scripted):
    generator, backend, filters = make(tmp_path, scripted)
    result = generator.run_batch(0, needed=10)
    by_task = {r.instruction: r for r in result.records}
    assert set(by_task) == {"Suggest three names for a small bakery.",
                            "Explain why leaves change colour in autumn.",
                            "Is this sentence a question? Answer Question or Statement."}
    clf = [r for r in result.records if r.kind == "classification"]
    assert sorted(r.label for r in clf) == ["Question", "Statement"]  # output-first: one per label
    assert {r.lineage.operation for r in clf} == {"output_first"}
    record = by_task["Suggest three names for a small bakery."]
    assert record.input == "" and record.output == "Crumb & Co, Rise Up, The Daily Loaf"
    assert record.lineage.generator == "self_instruct" and record.lineage.model == "scripted"
    assert len(record.lineage.seed_ids) == 8 and record.lineage.task_id
    assert set(record.lineage.prompts) == {"new_tasks", "is_classification", "input_first"}
    assert record.lineage.sampling["temperature"] == 0.7
    rules = {r.rule for r in result.rejections}
    # The second request repeats the first one's items: ROUGE-L drops them; 'picture' is blacklisted.
    assert rules == {"rouge_l", "blacklist"}
    for stage in (filters.tasks.counts, filters.instances.counts):
        assert stage.entered == stage.accepted + stage.dropped


def test_truncated_reply_is_discarded_whole_and_counted(tmp_path, scripted):
    def truncated(messages, sampling):
        if messages[-1]["content"] == "9.":
            return Completion(NEW_TASKS, "length", 10, 320)
        return script(messages, sampling)

    generator, _, filters = make(tmp_path, scripted, truncated)
    result = generator.run_batch(0, needed=10)
    assert result.records == []
    assert [r.rule for r in result.rejections] == ["parse:truncated", "parse:truncated"]
    assert result.rejections[0].record.raw == NEW_TASKS
    assert filters.tasks.counts.rules["parse:truncated"] == {"checked": 2, "dropped": 2}


def test_unreadable_verdicts_and_instances_are_rejects_with_raw_text(tmp_path, scripted):
    def confused(messages, sampling):
        last = messages[-1]["content"]
        if "bakery" in last:
            return "Maybe, it depends"
        if last == "Input:" and "leaves" in messages[-2]["content"]:
            return " I am not sure what to write."
        return script(messages, sampling)

    generator, _, _ = make(tmp_path, scripted, confused)
    result = generator.run_batch(0, needed=10)
    reasons = {r.rule: r for r in result.rejections}
    assert reasons["parse:is_classification"].record.raw == "Maybe, it depends"
    assert reasons["parse:no_instances"].record.instruction == "Explain why leaves change colour in autumn."
    assert result.units == 1


def test_target_is_met_exactly_and_leftovers_are_written_as_rejects(tmp_path, scripted):
    generator, _, _ = make(tmp_path, scripted)
    result = generator.run_batch(0, needed=1)
    assert result.units == 1
    surplus = [r for r in result.rejections if r.rule == "target_reached"]
    assert surplus and all(r.record.instruction != generator.machine_tasks[-1].instruction for r in surplus)
    leftovers = generator.drain_backlog("the target was met first")
    assert all(r.rule == "not_needed" for r in leftovers)
    assert generator.backlog == []


def test_completion_mode_sends_raw_text_and_grows_the_same_tasks(tmp_path, scripted):
    def raw_script(prompt, sampling):
        assert isinstance(prompt, str), "completion mode must send raw text, never messages"
        if re.search(r"\n9\.$", prompt):
            return NEW_TASKS
        if prompt.endswith("Input:"):
            return " <noinput>\nOutput: Crumb & Co, Rise Up, The Daily Loaf"
        if prompt.endswith("Class label:"):
            return " Question\nInput: Is it raining?\n\nClass label: Statement\nInput: It is raining."
        return "Yes" if prompt.endswith("Question or Statement.") else "No"

    chat, _, _ = make(tmp_path / "chat", scripted)
    raw, backend, _ = make(tmp_path / "raw", scripted, reply=raw_script, mode="completion")
    in_chat, in_raw = chat.run_batch(0, needed=10), raw.run_batch(0, needed=10)
    assert sorted(r.instruction for r in in_raw.records) == sorted(r.instruction for r in in_chat.records)
    assert [r.output for r in in_raw.records] == [r.output for r in in_chat.records]
    first = backend.inner.batches[0][0]
    assert "<|im_start|>" not in first and re.findall(r"^(\d+)\.", first, re.M) == [str(i) for i in range(1, 10)]


def test_extra_instances_and_multi_line_labels_are_counted_rejects_not_cut(tmp_path, scripted):
    def chatty(messages, sampling):
        last = messages[-1]["content"]
        if last == "Input:":  # seven instances where instances_per_task is 5
            return "".join(f" Item {i}\nOutput: Answer number {i}.\n\nInput:" for i in range(7)).rstrip("Input:")
        if last == "Class label:":
            return (" Question\nIt asks something.\nInput: Is it raining?\n\n"
                    "Class label: Statement\nInput: It is raining.")
        return script(messages, sampling)

    generator, _, filters = make(tmp_path, scripted, reply=chatty)
    result = generator.run_batch(0, needed=10)
    rules = [r.rule for r in result.rejections]
    assert rules.count("max_instances") == 2 * 2  # two generation tasks, two extra instances each
    (label,) = [r for r in result.rejections if r.rule == "parse:label"]
    assert label.record.label == "Question\nIt asks something." and "runs over 2 lines" in label.reason
    assert label.record.raw  # the reply it came from, for the rejects file
    kept = [r for r in result.records if r.instruction.startswith("Suggest")]
    assert [r.input for r in kept] == [f"Item {i}" for i in range(5)]  # the first five, the rest counted
    counts = filters.instances.counts
    assert counts.entered == counts.accepted + counts.dropped


def test_alpaca_seeds_borrow_classification_examples_from_the_shipped_seeds(tmp_path, scripted):
    from sprout.generators.self_instruct.examples import worked_examples

    rows = [{"instruction": f"Write a sentence about {t} for a child.", "output": f"{t} are fun."}
            for t in ("rivers", "bread", "bees", "tides", "kites", "clocks", "glass", "moths")]
    path = tmp_path / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seeds = load_seeds([path])
    said = []
    examples = worked_examples(seeds, SelfInstructConfig(), said.append)
    borrowed = [s for s in examples if s not in seeds]
    assert len(borrowed) == 4 and all(s.is_classification and s.source.startswith(str(REPO)) for s in borrowed)
    assert said == ["seeds: 0 classification seed tasks; 4 of sprout's own (general.jsonl) are borrowed as worked "
                    "examples for the classification judge and the classification instance prompts."]
    backend = CachedBackend(scripted(script), tmp_path / "cache.sqlite")
    filters = build_filters(FilterConfig(), [s.instruction for s in seeds])
    generator = SelfInstruct(SelfInstructConfig(requests_per_batch=2, tasks_per_batch=4), seeds, backend, filters,
                             run_seed=1, examples=examples)
    generator.run_batch(0, needed=10)
    sent = [messages for batch in backend.inner.batches for messages in batch]
    judge = next(m for m in sent if "Question or Statement" in m[-1]["content"] and m[-1]["role"] == "user")
    assert any(s.instruction in "\n".join(x["content"] for x in judge) for s in borrowed)
    proposals = [m for m in sent if m[-1]["content"] == "9."]
    shown = "\n".join(x["content"] for m in proposals for x in m)
    assert not any(s.instruction in shown for s in borrowed)  # proposal prompts show only the user's seeds
