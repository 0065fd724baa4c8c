from sprout.backends.base import Sampling
from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig, JudgeConfig
from sprout.core.parsing import parse_verdict
from sprout.core.prompts import load_prompt
from sprout.core.records import Lineage, Record
from sprout.filters.build import build_filters, build_judge
from sprout.filters.judge import JudgeRule

LINEAGE = Lineage(generator="test")


def rec(instruction, output="A full and correct answer."):
    return Record(instruction=instruction, output=output, lineage=LINEAGE)


def test_verdict_parsing():
    assert parse_verdict("Valid.", ["Invalid", "Valid"]) == "Valid"
    assert parse_verdict("**invalid** because...", ["Invalid", "Valid"]) == "Invalid"
    assert parse_verdict("They are not equal", ["Equal", "Not equal"]) == "Not equal"
    assert parse_verdict("Equal, not different", ["Equal", "Not equal"]) == "Equal"
    assert parse_verdict("I think so", ["Equal", "Not equal"]) is None


def judge_replies(replies: dict[str, str]):
    def script(messages, sampling):
        return next(reply for key, reply in replies.items() if key in messages[-1]["content"])
    return script


def test_judge_rule_is_batched_cached_and_counts_unparseable(tmp_path, scripted):
    inner = scripted(judge_replies({"sky": "Valid", "sea": "Invalid", "moon": "Hmm, hard to say"}))
    backend = CachedBackend(inner, tmp_path / "c.sqlite")
    rule = JudgeRule("quality", load_prompt("judge/quality"), backend, Sampling(temperature=0), ["Invalid"], ["Valid"])
    verdicts = rule.check_batch([rec("Why is the sky blue?"), rec("Why is the sea salty?"), rec("Is the moon far?")])
    assert verdicts[0] is None
    assert verdicts[1].reason == "the judge answered 'Invalid'"
    assert verdicts[2].rule == "judge:quality:unparseable"
    assert len(inner.batches) == 1 and len(inner.batches[0]) == 3  # one batched call
    rule.check_batch([rec("Why is the sky blue?")])
    assert len(inner.batches) == 1  # answered from the cache


def test_judge_config_takes_verdicts_from_the_prompt_file(scripted):
    judge = build_judge(JudgeConfig(name="quality", prompt="judge/quality"), scripted(lambda m, s: "Valid"))
    assert (judge.drop, judge.keep, judge.name) == (["Invalid"], ["Valid"], "judge:quality")


def test_stage_with_a_judge_keeps_greedy_dedup_exact(tmp_path, scripted):
    """Cheap rules, then one judge call for all survivors, then dedup again: a judged-out candidate never enters the
    ROUGE pool, and two near-duplicates that both pass the judge are still caught."""
    config = FilterConfig(task_rules=["word_count", "rouge_l"],
                          judges=[JudgeConfig(name="quality", prompt="judge/quality", stage="tasks")])
    backend = CachedBackend(scripted(judge_replies({"bread": "Invalid", "": "Valid"})), tmp_path / "c.sqlite")
    filters = build_filters(config, ["Translate this sentence into French."], lambda cfg: backend)
    candidates = [rec("Explain how to bake bread at home."), rec("Explain how to bake bread at home, quickly."),
                  rec("Describe the life cycle of a frog."), rec("Describe the life cycle of a frog!"),
                  rec("Translate this sentence into French!"), rec("Too short")]
    accepted, rejected, rest = filters.tasks.run(candidates)
    assert [r.instruction for r in accepted] == ["Describe the life cycle of a frog."]
    assert [(r.rule, r.record.instruction) for r in rejected] == [
        ("rouge_l", "Translate this sentence into French!"), ("word_count", "Too short"),
        ("judge:quality", "Explain how to bake bread at home."),
        ("judge:quality", "Explain how to bake bread at home, quickly."),
        ("rouge_l", "Describe the life cycle of a frog!")]
    assert rest == []
    counts = filters.tasks.counts
    assert counts.rules["judge:quality"] == {"checked": 4, "dropped": 2}
    assert counts.rules["rouge_l"] == {"checked": 5, "dropped": 2}
    assert counts.entered == counts.accepted + counts.dropped
