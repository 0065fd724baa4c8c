"""Fuzzing (issue 8, property 4): Hypothesis over every filter rule, the reply parsers and the ROUGE-L implementation.

Inputs: arbitrary Unicode (no lone surrogates: a str holding one is not text), the empty string, very long strings
(10k-100k characters, built by repetition), punctuation or whitespace only, and strings made of the format markers
the parsers look for ("Input:", "Output:", "9.", "Class label:", "**"). Properties:

* rules: every record rule, group rule and filter stage (the default rule lists, built as the pipeline builds them)
  gives a verdict without raising, and a stage accounts for every candidate (accepted + rejected + unjudged = in,
  every reject with a rule and a reason); what it accepts really is ROUGE-L-distinct and exact-duplicate free;
* ROUGE-L (both tokenizers): the score lies in [0, 1], is symmetric, is 1 against itself (when there are tokens), is
  rouge-score's F-measure bit for bit in rouge mode, and the index decides as pairwise scoring does;
* parsers: each returns its documented type, on anything; the generators (Self-Instruct, Evol-Instruct, pair
  synthesis, behind a backend that answers with fuzzed text, cut-off replies and backend errors) turn every reply
  into records or counted rejects that keep the raw text: no exception, no candidate lost.

Reproducible: derandomized, no example database. Sizes keep the file well under a minute on two slow cores; the
examples run per property are counted and printed at the end of the module.
"""

from __future__ import annotations

import json
import re
import string
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from sprout.backends.base import Backend, Completion
from sprout.config.filters import INSTANCE_RULES, TASK_RULES, FilterConfig
from sprout.core.parsing import (
    NO_INPUT,
    clean_field,
    clean_input,
    continued_items,
    match_label,
    parse_instances,
    parse_numbered_list,
    parse_verdict,
    parse_yes_no,
)
from sprout.core.records import Lineage, Record
from sprout.core.seeds import load_seeds
from sprout.filters.build import build_filters, build_judge, build_stage
from sprout.filters.fast_rouge import FastRougeIndex, dedup_greedy
from sprout.filters.registry import GROUP_RULES, OPT_IN_RECORD_RULES, RECORD_RULES
from sprout.filters.rouge_scoring import rouge_l, tokenize
from sprout.filters.rules import Drop
from sprout.generators.evol_instruct.config import EvolInstructConfig
from sprout.generators.evol_instruct.generator import make_evolver
from sprout.generators.flan.config import FLAN_RULES
from sprout.generators.pair_synthesis.config import PAIR_RULES, PairSynthesisConfig
from sprout.generators.pair_synthesis.generator import PairSynthesis
from sprout.generators.pair_synthesis.task_spec import load_specs
from sprout.generators.self_instruct.config import SelfInstructConfig
from sprout.generators.self_instruct.generator import SelfInstruct
from tests.conftest import REPO

# -- settings and the example count ------------------------------------------------------------------------------------

FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example, HealthCheck.filter_too_much])
RAN: Counter[str] = Counter()  # property -> examples run (explicit @example rows included)


def fuzz(max_examples: int):
    return settings(FUZZ, max_examples=max_examples)


def ran(name: str, *texts: str) -> None:
    RAN[name] += 1
    if any(len(t) >= 10_000 for t in texts):
        RAN[f"{name}: 10k+ chars"] += 1
        event("an input of 10k+ characters")  # in --hypothesis-show-statistics


@pytest.fixture(scope="module", autouse=True)
def _report_examples(pytestconfig):
    yield
    if RAN:
        line = ", ".join(f"{name} {count}" for name, count in RAN.items())
        total = sum(n for name, n in RAN.items() if "10k+" not in name)
        message = f"fuzz: {total} examples run ({line})"
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line("")
                reporter.write_line(message)


# -- strategies --------------------------------------------------------------------------------------------------------

# Characters that break naive text handling: combining marks, RTL text and controls, emoji with modifiers and ZWJ,
# NUL and C0/C1 controls, Unicode line breaks, zero-width and BOM, case folding oddities (long s, dotless and dotted
# i, Kelvin sign, final sigma, sharp s, ligatures), full-width forms, CJK, Hangul, Devanagari, Thai, Arabic digits.
SPECIAL = ("\u0301\u0307\u0308\u093f\u094d\u0e31\u20dd"  # combining marks
           "אבגعربي\u200e\u200f\u202a\u202b\u202e\u2066\u2069"  # RTL letters and direction controls
           "👍🏽👨\u200d👩\u200d👧🇫🇷\ufe0f"  # emoji, skin tone, ZWJ, flag, variation selector
           "\x00\x01\x07\x1b\x7f\x85\x9f"  # NUL, controls
           "\n\r\t\x0b\x0c\x1c\x1d\x1e\u2028\u2029\xa0\u3000\u200b\ufeff"  # line breaks, spaces, zero-width, BOM
           "ſıİKΣσςßﬁﬀǅẞ"  # case folding
           "ＡＢｃ１２猫喜欢한국어नमस्तेสวัสดี٣١٠"  # wide forms, CJK, Hangul, Devanagari, Thai, Arabic-Indic digits
           "aeiouxyzAEIOU0123456789 .,:;!?*#-_'\"()<>")
PUNCT = string.punctuation + "¡¿«»—–…。、！？・“”‘’§¶†‡•‰′″"
BLANK = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"
MARKERS = ["Input:", "Output:", "Class label:", "Task:", "input :", "OUTPUT:", "**Input:**", "**Output:**",
           "Class label :", "1.", "9.", "10.", "10)", "11 .", "**12.**", "99.", "999.", "1000.", "**", "<noinput>",
           "N/A", "Yes", "No", "yes.", "**No**", "Equal", "Not Equal", "True", "False", "Valid", "Invalid", "Answer:",
           "Label:", "the answer is", "sorry", "As an AI", "I cannot", "#Rewritten Prompt#", "given prompt", "image",
           "go to", "Write a program", "Sentence:", "\n", "\n\n", " ", "\t", ":", "\"", "“", "*"]
WORDS = ["the", "a", "of", "is", "Explain", "write", "list", "three", "cats", "water", "cycle", "poem", "autumn",
         "Sort", "numbers", "it", "and", "Paris", "42", "e-mail", "naïve", "Straße", "İstanbul", "猫", "Привет", "мир",
         "नमस्ते", "עברית", "مرحبا", "👍", "ﬁle", "Ｆｕｌｌ"]

short_text = st.one_of(
    st.text(max_size=40),  # arbitrary Unicode: every category but the surrogates
    st.text(alphabet=SPECIAL, max_size=40),
    st.just(""),
    st.text(alphabet=BLANK, min_size=1, max_size=20),
    st.text(alphabet=PUNCT, min_size=1, max_size=20),
    st.lists(st.one_of(st.sampled_from(MARKERS), st.sampled_from(WORDS), st.text(alphabet=SPECIAL, max_size=4)),
             max_size=16).map(" ".join),
    st.lists(st.one_of(st.sampled_from(MARKERS), st.sampled_from(WORDS), st.text(max_size=6)),
             max_size=16).map("".join),
)


@st.composite
def long_text(draw, min_size: int = 10_000, max_size: int = 100_000) -> str:
    """10k-100k characters, cheaply: a fuzzed chunk repeated."""
    chunk = draw(short_text.filter(bool))
    size = draw(st.integers(min_size, max_size))
    return (chunk * (size // len(chunk) + 1))[:size]


text = st.one_of(short_text, long_text())
sentence = st.lists(st.one_of(st.sampled_from(WORDS), st.text(alphabet=SPECIAL, min_size=1, max_size=8)),
                    min_size=4, max_size=14).map(" ".join)  # gets past word_count, so later rules see it
# An instruction that the task rules may well accept (an ASCII verb first, enough words), so the fuzzed replies also
# reach the steps after the filters: classification, instances, responses, judges.
VERBS = ["Explain", "Write", "List", "Describe", "Summarize", "Translate", "Classify", "Name", "Suggest", "Give"]
INK = "".join(c for c in SPECIAL if not c.isspace())
task_sentence = st.tuples(st.sampled_from(VERBS), st.lists(st.one_of(
    st.sampled_from(WORDS), st.text(alphabet=INK, min_size=1, max_size=8)), min_size=3, max_size=12)).map(
    lambda t: " ".join([t[0], *t[1]]))
field_text = st.one_of(short_text, sentence, long_text(max_size=30_000))

LINEAGE = Lineage(generator="fuzz", task_id="task")


@st.composite
def records(draw, max_size: int = 8) -> list[Record]:
    """Distinct Record objects; some share fields (dedup and group rules see repeats), some are classifications."""
    pool = draw(st.lists(field_text, min_size=1, max_size=4))
    pick = st.one_of(st.sampled_from(pool), field_text)
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        kind = draw(st.sampled_from(["generation", "classification"]))
        output = draw(pick)
        task = draw(st.sampled_from([None, "t1", "t2"]))
        out.append(Record(instruction=draw(pick), input=draw(pick), output=output, kind=kind,
                          label=output if kind == "classification" else None,
                          lineage=Lineage(generator="fuzz", task_id=task)))
    return out


SEEDS = [s.instruction for s in load_seeds([REPO / "seeds" / "general.jsonl"])]
RULE_LISTS = {"tasks": TASK_RULES, "instances": INSTANCE_RULES, "pairs": PAIR_RULES, "flan": FLAN_RULES,
              "evolutions": EvolInstructConfig().rules}


def unit(score) -> bool:
    return score is None or (isinstance(score, float) and 0.0 <= score <= 1.0)


# -- the fuzzing backend -----------------------------------------------------------------------------------------------


def mostly(structured, noise):
    """Three in four replies well-formed (so later steps are reached), the rest fuzzed text."""
    return st.sampled_from([structured, structured, structured, noise]).flatmap(lambda strategy: strategy)


FINISH = st.sampled_from(["stop"] * 6 + ["length", "error"])  # mostly answers; some cut off; some backend errors


class FuzzBackend(Backend):
    """Answers every prompt with a reply drawn from `reply_for(prompt)`: stopped, cut off at the length limit, or a
    backend error. Keeps every reply text, to check that rejects carry the raw text they came from."""

    model_id = "fuzz"

    def __init__(self, data, reply_for):
        self.data, self.reply_for = data, reply_for
        self.sent: Counter[str] = Counter()
        self.texts: set[str] = set()

    def generate(self, batch, sampling, generator=""):
        return [[self._reply(prompt) for _ in range(sampling.n)] for prompt in batch]

    def _reply(self, prompt) -> Completion:
        kind, strategy = self.reply_for(prompt)
        self.sent[kind] += 1
        finish = self.data.draw(FINISH, label=f"{kind} finish")
        if finish == "error":
            return Completion("", "error", error="FuzzError: injected")
        reply = self.data.draw(strategy, label=f"{kind} reply")
        self.texts.add(reply)
        return Completion(reply, finish, 10, len(reply.split()))


# Letters that re.IGNORECASE matches to an ASCII letter although .lower() does not give that letter: long s,
# dotless i, dotted capital I, Kelvin sign. A parser that matches with re.I must also compare that way.
CONFUSABLE = str.maketrans({"s": "ſ", "i": "ı", "I": "İ", "k": "K"})


def judge_reply(verdicts: list[str]):
    decorated = st.tuples(st.sampled_from(["", " ", "**", "B is ", "\n", "Answer: "]), st.sampled_from(verdicts),
                          st.sampled_from(["", ".", "**", "\n", " - the same"])).map("".join)
    return st.one_of(decorated, decorated.map(str.upper), decorated.map(lambda t: t.translate(CONFUSABLE)))


# -- 1. filter rules ---------------------------------------------------------------------------------------------------


# The opt-in decontamination rule needs an eval file: the seed instructions, so fuzzed records built from seed words
# share 3-grams with it and the rule's drop path runs too.
EVAL_FILE = Path(tempfile.mkdtemp(prefix="sprout-fuzz-")) / "eval.jsonl"
EVAL_FILE.write_text("".join(json.dumps({"question": seed}) + "\n" for seed in SEEDS[:40]), encoding="utf-8")


def all_record_rules(config: FilterConfig):
    config = config.model_copy(update={"decontaminate_against": [EVAL_FILE], "decontamination_n": 3,
                                       "decontamination_min_tokens": 2})
    rules = [make(config) for make in {**RECORD_RULES, **OPT_IN_RECORD_RULES}.values()]
    for rule in rules:
        if hasattr(rule, "index"):
            for seed in SEEDS[:40]:
                rule.index.add(seed)
    return rules


@fuzz(150)
@given(records(), st.sampled_from(["rouge", "unicode"]))
@example([Record(instruction="", input="", output="", lineage=LINEAGE)], "rouge")
@example([Record(instruction="\x00" * 3, input="Output:", output="Input: x\nOutput: y", lineage=LINEAGE)] * 2,
         "unicode")
def test_every_rule_gives_a_verdict(batch, tokenizer):
    ran("rule verdicts", *(f for r in batch for f in (r.instruction, r.input, r.output)))
    config = FilterConfig(rouge_tokenizer=tokenizer)
    rules = all_record_rules(config)
    assert {r.name for r in rules} == set(RECORD_RULES) | set(OPT_IN_RECORD_RULES)
    for record in batch:
        for rule in rules:
            verdict = rule.check(record)
            assert verdict is None or (isinstance(verdict, str) and verdict) or (
                isinstance(verdict, Drop) and verdict.reason and unit(verdict.score)), (rule.name, verdict)
            if rule.stateful:
                if verdict is None:
                    rule.accepted(record)
                    rule.recheck(record)  # against itself now: a dedup rule may drop it, but must not raise
                else:
                    assert rule.recheck(record)  # nothing was added since: still dropped
    for name, make in GROUP_RULES.items():
        found = make(config)(batch)
        assert isinstance(found, dict) and set(found) <= set(range(len(batch))), name
        assert all(isinstance(reason, str) and reason for reason in found.values()), name


def fuzz_judge(data, verdicts_from: str):
    config = EvolInstructConfig().judge if verdicts_from == "evol" else \
        EvolInstructConfig().judge.model_copy(update={"name": "quality", "prompt": "judge/quality"})
    verdicts = ["Equal", "Not Equal"] if verdicts_from == "evol" else ["Valid", "Invalid"]
    backend = FuzzBackend(data, lambda prompt: ("judge", mostly(judge_reply(verdicts), short_text)))
    context = (lambda record: {"parent": "Explain gravity."}) if verdicts_from == "evol" else None
    return build_judge(config, backend, context=context)


@fuzz(200)
@given(records(max_size=10), st.sampled_from(sorted(RULE_LISTS)), st.sampled_from(["rouge", "unicode"]),
       st.one_of(st.none(), st.integers(0, 10)), st.sampled_from([None, "evol", "quality"]), st.data())
def test_a_stage_accounts_for_every_candidate(batch, stage_name, tokenizer, limit, judge, data):
    ran("stage accounting", *(f for r in batch for f in (r.instruction, r.input, r.output)))
    config = FilterConfig(rouge_tokenizer=tokenizer)
    judges = [fuzz_judge(data, judge)] if judge else []
    stage = build_stage(stage_name, RULE_LISTS[stage_name], config, judges)
    stage.seed_dedup(SEEDS[:20])
    stage.seed_dedup([r.input for r in batch[:2]], field="input")
    accepted, rejected, rest = stage.run(batch, limit=limit)

    judged = len(batch) - len(rest)
    assert rest == batch[judged:]  # the unjudged rest is the tail, untouched
    assert sorted(map(id, accepted + [r.record for r in rejected])) == sorted(map(id, batch[:judged]))
    assert [id(r) for r in accepted] == [id(r) for r in batch[:judged] if any(r is a for a in accepted)]  # in order
    assert limit is None or len(accepted) <= limit
    counts = stage.counts
    assert counts.entered == judged and counts.accepted == len(accepted) and counts.dropped == len(rejected)
    names = {*RULE_LISTS[stage_name], *(j.name for j in judges), *(f"{j.name}:unparseable" for j in judges),
             "backend_error"}
    for reject in rejected:
        assert reject.rule in names and isinstance(reject.reason, str) and reject.reason and unit(reject.score)
    assert all(unit(score) for score in stage.rouge_scores())

    rules = RULE_LISTS[stage_name]
    if "exact_duplicate" in rules:
        keys = [(r.instruction.strip(), r.input.strip(), r.output.strip()) for r in accepted]
        assert len(keys) == len(set(keys))
    for rule_name, field, pool in (("rouge_l", "instruction", SEEDS[:20]),
                                   ("input_rouge_l", "input", [r.input for r in batch[:2]])):
        if rule_name in rules:  # greedy dedup: nothing accepted is near an earlier acceptance or the pool
            threshold = config.rouge_l_threshold if field == "instruction" else config.input_rouge_l_threshold
            kept = [getattr(r, field) for r in accepted]
            for i, mine in enumerate(kept):
                assert all(rouge_l(other, mine, tokenizer) <= threshold for other in [*pool, *kept[:i]])


# -- 2. ROUGE-L --------------------------------------------------------------------------------------------------------

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@fuzz(250)
@given(text, text, st.sampled_from(["rouge", "unicode"]))
@example("", "", "rouge")
@example("!!! ...", "?", "unicode")
@example("İ ſ K ß", "i s k ss", "unicode")
@example("a" * 100_000, "a " * 50_000, "rouge")
def test_rouge_l_is_a_symmetric_score_in_the_unit_interval(a, b, mode):
    ran("rouge range/symmetry", a, b)
    score = rouge_l(a, b, mode)
    assert isinstance(score, float) and 0.0 <= score <= 1.0
    assert score == rouge_l(b, a, mode)
    assert rouge_l(a, a, mode) == (1.0 if tokenize(a, mode) else 0.0)
    if not tokenize(a, mode) or not tokenize(b, mode):
        assert score == 0.0


@fuzz(200)
@given(short_text, short_text)
@example("İstanbul KELVIN", "i̇stanbul kelvin")
@example("\x00a\x00b", "a b")
def test_rouge_mode_is_rouge_scores_exactly(a, b):
    ran("rouge vs rouge-score")
    assert tokenize(a) == rs_tokenize.tokenize(a, None)
    assert rouge_l(a, b) == SCORER.score(a, b)["rougeL"].fmeasure


# A small vocabulary of words in several scripts, with Unicode noise around them: corpora with real overlap.
corpus_word = st.one_of(st.sampled_from(WORDS + ["cat", "CAT", "Cat", "猫", "喜", "ß", "ss", "ﬁ", "fi"]),
                        st.text(alphabet=SPECIAL, max_size=3))
corpus_text = st.one_of(st.lists(corpus_word, max_size=10).map(" ".join), short_text)


def pairwise_greedy(texts: list[str], threshold: float, mode: str) -> list[int]:
    kept: list[int] = []
    for k, t in enumerate(texts):
        if all(rouge_l(texts[j], t, mode) <= threshold for j in kept):
            kept.append(k)
    return kept


@fuzz(120)
@given(st.lists(corpus_text, max_size=8), corpus_text, st.sampled_from(["rouge", "unicode"]),
       st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9, 1.0]))
def test_the_index_decides_as_pairwise_scoring(pool, query, mode, threshold):
    ran("index vs pairwise")
    index = FastRougeIndex(mode)
    for entry in pool:
        index.add(entry)
    scores = [rouge_l(entry, query, mode) for entry in pool]
    best = max(scores, default=0.0)
    expected = (best, pool[scores.index(best)]) if best > 0 else (0.0, None)
    assert index.nearest(query) == expected
    assert index.exceeds(query, threshold) == (expected if best > threshold else None)
    texts = [*pool, query]
    assert dedup_greedy(texts, threshold, mode) == pairwise_greedy(texts, threshold, mode)
    if mode == "rouge":
        reference: list[int] = []
        for k, t in enumerate(texts):
            if all(SCORER.score(texts[j], t)["rougeL"].fmeasure <= threshold for j in reference):
                reference.append(k)
        assert dedup_greedy(texts, threshold) == reference


# -- 3. parsers --------------------------------------------------------------------------------------------------------

reply_text = st.one_of(text, st.lists(st.one_of(st.sampled_from(MARKERS), short_text), max_size=12).map("\n".join))


@fuzz(250)
@given(reply_text, st.integers(1, 20), st.integers(1, 20))
@example("9.\n10.   \n", 9, 16)
@example("١٠. Arabic-Indic digits are digits\n١١. too", 10, 16)
@example("\u2028".join(["9. a", "10. b"]), 9, 16)
def test_numbered_lists(reply, first, stop):
    ran("numbered lists", reply)
    items = parse_numbered_list(reply)
    assert isinstance(items, list)
    for number, body in items:
        assert isinstance(number, int) and 0 <= number <= 999
        assert isinstance(body, str) and body and body == body.strip() and not re.search(r"\s\s|[^\S ]", body)
    kept = continued_items(items, first, stop)
    assert kept == [body for _, body in items[: len(kept)]]
    assert [n for n, _ in items[: len(kept)]] == list(range(first, first + len(kept)))
    assert all(n < stop for n, _ in items[: len(kept)])


# The pair patterns as they were before the linear-time rewrite (parsing.py), as the reference for its results.
OLD_PATTERNS = {
    "input_first": re.compile(r"Input\s*:(.*?)Output\s*:(.*?)(?=\n\s*(?:\*\*)?Input\s*:|\Z)", re.S | re.I),
    "output_first": re.compile(r"Class label\s*:(.*?)Input\s*:(.*?)(?=\n\s*(?:\*\*)?Class label\s*:|\Z)",
                               re.S | re.I),
}


def old_parse_instances(reply: str, mode: str) -> list[tuple[str, str]]:
    """The old patterns, with today's contract: every pair, a label whole (the caller counts what it refuses)."""
    pairs = []
    for first, second in OLD_PATTERNS[mode].findall(reply):
        if mode == "input_first":
            pairs.append((clean_field(first), clean_field(second)))
        else:
            pairs.append((clean_field(second), clean_field(first)))
    return pairs


@fuzz(250)
@given(reply_text, st.sampled_from(["input_first", "output_first"]))
@example("Input: a Output: b" + "\n" * 20_000, "input_first")  # was quadratic in the blank run
@example("Input:" * 16_000, "input_first")  # was quadratic in the markers after the last pair
@example("Class label: x\nInput: y" + "\n \n" * 5_000 + "Class label: z\nInput: w", "output_first")
@example("Input: \u2028a\x85\nOutput: *b*\n\n\r\n  **Input: c\nOutput: <noinput>", "input_first")
def test_instances(reply, mode):
    ran("instances", reply)
    pairs = parse_instances(reply, mode)
    assert isinstance(pairs, list)
    for pair in pairs:
        assert isinstance(pair, tuple) and len(pair) == 2
        assert all(isinstance(f, str) and f == f.strip() for f in pair)
        assert pair[0].lower() not in NO_INPUT  # "no input" markers become ""
        if mode == "input_first":
            assert pair[1].lower() not in NO_INPUT
    if len(reply) <= 2_000:  # the reference is quadratic
        assert pairs == old_parse_instances(reply, mode)


@fuzz(200)
@given(reply_text)
@example(" " * 50_000)  # was quadratic in the blank run
@example("Yeſ")  # re.I matches ſ to s: it is a yes, not a no
@example("**NO**, never")
def test_yes_no_and_verdicts(reply):
    ran("yes/no, verdicts, labels, inputs", reply)
    verdict = parse_yes_no(reply)
    assert verdict is None or isinstance(verdict, bool)
    head = re.match(r"[\s*]*(\w+)", reply)
    if verdict is not None:
        assert head and head.group(1).lower() in ("yes", "no", "yeſ")
        assert verdict is (head.group(1)[0] in "yY")
    for verdicts in (["Equal", "Not Equal"], ["Valid", "Invalid"], ["Yes", "No"], ["True", "False"]):
        found = parse_verdict(reply, verdicts)
        assert found is None or found in verdicts
    for labels in (["True", "False"], ["positive", "negative", "not sure"], ["İyi", "Kötü"]):
        said = match_label(reply, labels)
        assert said is None or said in labels
    cleaned = clean_input(reply)
    assert isinstance(cleaned, str) and cleaned == cleaned.strip()


@pytest.mark.parametrize(("parse", "reply"), [
    (parse_yes_no, " " * 100_000),
    (lambda t: parse_instances(t, "input_first"), "Input: a Output: b" + "\n" * 100_000),
    (lambda t: parse_instances(t, "output_first"), "Class label: a Input: b" + "\n\t" * 50_000),
    (lambda t: parse_instances(t, "input_first"), "Input:" * 16_000),
    (lambda t: parse_instances(t, "output_first"), "Class label:" * 8_000),
])
def test_long_degenerate_replies_parse_in_linear_time(parse, reply):
    """Replies a looping small model can write (blank lines, repeated markers): each regex was quadratic in them,
    minutes at 100k characters. Now milliseconds; the bound leaves a slow CI machine a wide margin."""
    started = time.perf_counter()
    parse(reply)
    assert time.perf_counter() - started < 2.0


@fuzz(150)
@given(st.sampled_from([["Equal", "Not Equal"], ["Valid", "Invalid"], ["Yes", "No"], ["True", "False"]]), st.data())
def test_a_reply_naming_a_verdict_is_read(verdicts, data):
    ran("verdict reading")
    verdict = data.draw(st.sampled_from(verdicts))
    spelled = data.draw(st.sampled_from([verdict, verdict.upper(), verdict.lower(), verdict.translate(CONFUSABLE)]))
    prefix = data.draw(st.sampled_from(["", " ", "**", "B is ", "\n", "Answer: ", "**Verdict:** "]))
    suffix = data.draw(st.sampled_from(["", ".", "**", "\n", " - clearly", "!", ", because"]))
    assert parse_verdict(prefix + spelled + suffix, verdicts) == verdict


@pytest.mark.parametrize(("reply", "verdicts", "expected"), [
    ("Yeſ", ["Yes", "No"], "Yes"),  # raised StopIteration: re.I matched, .lower() comparison did not
    ("VALİD", ["Valid", "Invalid"], "Valid"),
    ("Valıd.", ["Valid", "Invalid"], "Valid"),
    ("not equal", ["Equal", "Not Equal"], "Not Equal"),
])
def test_verdict_case_folding_regressions(reply, verdicts, expected):
    assert parse_verdict(reply, verdicts) == expected


label_text = st.text(alphabet=string.ascii_letters + string.digits + "ÄäÖöÜüÉéñçΣσ猫 -",
                     min_size=1, max_size=12).map(str.strip).filter(
    lambda s: s and s[0].isalnum() and s[-1].isalnum() and len(s.lower()) == len(s)
    and not s.lower().startswith(("answer:", "label:", "the answer is")))


@fuzz(150)
@given(st.lists(label_text, min_size=2, max_size=5, unique_by=str.lower), st.data())
def test_a_reply_naming_a_label_is_matched(labels, data):
    ran("label matching")
    label = data.draw(st.sampled_from(labels))
    reply = data.draw(st.sampled_from(["{}", "**{}**", "{}.", " {}\nbecause ...", "Answer: {}", "`{}` - it is",
                                       "\n\n\"{}\"", "{}!", "Label: **{}**"])).format(label)
    if any(other != label and other.lower().startswith(label.lower()) for other in labels):
        return  # the reply may well name the longer label ("not sure" over "not")
    assert match_label(reply, labels) == label


def test_a_label_whose_lowercase_is_longer_is_matched():
    assert match_label("İyi", ["İyi", "Kötü"]) == "İyi"


# -- 3b. the generators' reply -> record paths ---------------------------------------------------------------------


def raw_kept(rejections, backend: FuzzBackend) -> None:
    """Every parse reject keeps the reply it could not read; every reject has a rule and a reason."""
    for reject in rejections:
        assert reject.rule and isinstance(reject.reason, str), reject
        if reject.rule.startswith("parse:"):
            assert reject.record.raw in backend.texts or reject.record.output in backend.texts, reject


def balanced(stage) -> None:
    assert stage.counts.entered == stage.counts.accepted + stage.counts.dropped


def numbered_reply(start: int):
    item = mostly(task_sentence, st.one_of(sentence, short_text))
    return st.lists(item, min_size=1, max_size=5).map(
        lambda items: "".join(f"{body}\n{start + 1 + i}. " for i, body in enumerate(items)).rstrip(" .0123456789\n"))


def instance_reply(marker: str, second: str):
    pair = st.tuples(st.one_of(sentence, short_text), st.one_of(sentence, short_text)).map(
        lambda p: f" {p[0]}\n{second} {p[1]}")
    return st.lists(pair, min_size=1, max_size=4).map(lambda pairs: f"\n\n{marker}".join(pairs))


def self_instruct_replies(prompt):
    last = prompt[-1]["content"]
    if prompt[-1]["role"] == "assistant" and re.fullmatch(r"\d+\.", last):
        return "propose", mostly(numbered_reply(int(last[:-1])), reply_text)
    if last == "Input:":
        return "instances", mostly(instance_reply("Input:", "Output:"), reply_text)
    if last == "Class label:":
        return "instances", mostly(instance_reply("Class label:", "Input:"), reply_text)
    return "classify", mostly(st.sampled_from(["Yes", "No", " yes.", "**No**", "Yeſ", "YEſ, it is"]), reply_text)


class ProbedSelfInstruct(SelfInstruct):
    """Self-Instruct with its three steps observed: what each one was given and gave back."""

    def _propose(self, batch, result):
        self.proposed = super()._propose(batch, result)
        return self.proposed

    def _classify(self, batch, tasks, result):
        self.tasks = list(tasks)
        self.labelled = super()._classify(batch, tasks, result)
        return self.labelled

    def _instances(self, batch, labelled, result):
        self.groups = list(super()._instances(batch, labelled, result))
        return self.groups


@fuzz(100)
@given(st.integers(1, 6), st.data())
def test_self_instruct_turns_every_reply_into_records_or_counted_rejects(needed, data):
    ran("self-instruct replies")
    backend = FuzzBackend(data, self_instruct_replies)
    filters = build_filters(FilterConfig(), SEEDS)
    config = SelfInstructConfig(requests_per_batch=2, tasks_per_batch=4)
    generator = ProbedSelfInstruct(config, load_seeds([REPO / "seeds" / "general.jsonl"]), backend, filters, 1)
    generator.tasks, generator.labelled, generator.groups = [], [], []
    result = generator.run_batch(0, needed=needed)
    left = generator.drain_backlog("fuzz")

    def where(reject):
        operation = reject.record.lineage.operation
        if operation == "new_task":
            if not reject.record.instruction:
                return "request"  # the whole reply was unusable
            return "classify" if reject.rule in ("parse:is_classification", "backend_error") else "tasks"
        return "instances" if reject.rule in ("parse:no_instances", "backend_error") else "records"

    by_step = Counter(where(r) for r in result.rejections)
    # Each proposal request: new instructions, or one counted reject.
    lineages = {id(r.lineage) for r in generator.proposed}
    assert backend.sent["propose"] == config.requests_per_batch == by_step["request"] + len(lineages)
    # Each proposal: accepted as a task, dropped by a task rule, or still waiting (then written as not_needed).
    assert len(generator.proposed) == len(generator.tasks) + by_step["tasks"] + len(left)
    assert backend.sent["classify"] == len(generator.tasks) == filters.tasks.counts.accepted
    # Each task: labelled, or one counted reject; each labelled task: a group of instances, or one counted reject.
    assert len(generator.tasks) == by_step["classify"] + len(generator.labelled)
    assert backend.sent["instances"] == len(generator.labelled) == by_step["instances"] + len(generator.groups)
    # Each instance of a group: a record, or a reject (a rule, or target_reached). Before the groups: a pair cut by
    # the length limit, a label over several lines, a pair past instances_per_task — each a counted reject too.
    counted_first = {"parse:truncated_instance", "parse:label"}
    before = [r for r in result.rejections if r.rule in counted_first or r.reason.startswith("the reply held")]
    assert sum(len(records) for _, records in generator.groups) == len(result.records) + sum(
        1 for r in result.rejections if where(r) == "records" and r not in before)
    assert all(len(records) <= config.instances_per_task for _, records in generator.groups)
    balanced(filters.tasks)
    balanced(filters.instances)
    assert len(result.records) == filters.instances.counts.accepted
    raw_kept(result.rejections, backend)


EVOL_SOURCES = [Record(instruction=t, output="ok", lineage=Lineage(generator="input")) for t in (
    "Explain why the sky is blue.", "Write a haiku about autumn leaves.", "Give two tips for better sleep.",
    "List three uses of copper wire.")]


def evol_replies(prompt):
    user = prompt[-1]["content"]
    if user.startswith("A: "):
        return "judge", mostly(judge_reply(["Equal", "Not Equal"]), short_text)
    return "rewrite or respond", mostly(st.one_of(task_sentence, sentence), reply_text)


@fuzz(100)
@given(st.data())
def test_evol_instruct_turns_every_reply_into_records_or_counted_rejects(data):
    ran("evol-instruct replies")
    backend = FuzzBackend(data, evol_replies)
    config = EvolInstructConfig(per_round=3, rounds=2)
    generator = make_evolver(config, FilterConfig(), EVOL_SOURCES, lambda _: backend, 3, dedup_against=EVOL_SOURCES)
    stage = generator.stage
    assert len(generator.generation) == 3 and len(generator.left_out) == 1  # the per_round cap: a sample
    for round_no in range(2):
        parents = list(generator.generation)
        result = generator.run_round(round_no)
        # Each row of the generation: one attempt, a new record or one counted reject (the row then stays as it was).
        assert len(parents) == len(result.records) + len(result.rejections) == generator.rounds[-1]["attempted"]
        assert generator.rounds[-1]["evolved"] + sum(generator.rounds[-1]["eliminated"].values()) == len(parents)
        survivors = {r.lineage.parent_ids[0]: r.id for r in result.records}
        assert [r.id for r in generator.generation] == [survivors.get(p.id, p.id) for p in parents]
        assert {r.record.lineage.parent_ids[0] for r in result.rejections} <= {p.id for p in parents}
        balanced(stage)
        raw_kept(result.rejections, backend)


@cache
def spec(name: str):
    path = REPO / "seeds" / "tasks" / name
    return load_specs([PairSynthesisConfig(task=path)])[0], path


def synth_replies(labels):
    def reply_for(prompt):
        if prompt[0]["content"].startswith("You write realistic inputs"):
            return "input", mostly(sentence, reply_text)
        if labels:
            return "label", mostly(judge_reply(labels), reply_text)
        return "output", mostly(sentence, reply_text)

    return reply_for


@fuzz(60)
@given(st.sampled_from(["political_promises.yaml", "plain_english.yaml"]), st.booleans(), st.data())
def test_pair_synthesis_turns_every_reply_into_records_or_counted_rejects(task, verify, data):
    ran("pair-synthesis replies")
    task_spec, path = spec(task)
    backend = FuzzBackend(data, synth_replies(task_spec.labels))
    config = PairSynthesisConfig(task=path, n=6, requests_per_batch=6, verify_output_first=verify)
    stage = build_stage("pairs", config.rules, FilterConfig())
    generator = PairSynthesis(config, task_spec, backend, stage, run_seed=3)
    for batch in range(2):
        planned = len(generator.plan(batch))
        result = generator.run_batch(batch)
        # Each request: a pair, or one counted reject (parse, label, quota or a rule).
        assert planned == len(result.records) + len(result.rejections)
        for record in result.records:
            assert record.input and (record.label in task_spec.labels if task_spec.labels else record.output)
        balanced(stage)
        raw_kept(result.rejections, backend)
