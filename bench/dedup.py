"""ROUGE-L dedup: rouge-score pair by pair (the reference, as `RougeIndex` does it) vs `FastRougeIndex`, same run.

The corpus is built from the project's own seed instructions: the seeds themselves, clauses of different seeds
recombined, instructions written from templates of our own filled with topics, objects and constraints (many taken
from the seeds), and seeded perturbations of earlier items (word drops, swaps, insertions, case and punctuation
changes) — the near-duplicates a generator produces — and long texts (65-300 tokens) followed by a longer text
that holds all of one in order, scored right at the 0.7 boundary (where rapidfuzz's score cut-off was not exact).
Both dedups run greedily, in order, on the same prefixes; the kept index lists must be identical. Then
FastRougeIndex alone runs on the larger sizes.

    .venv/bin/python bench/dedup.py                       # reference on 500, 1000, 2000; fast on 20000, 50000
    .venv/bin/python bench/dedup.py --ref-sizes 500 --sizes 5000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import time
from pathlib import Path

from rouge_score import rouge_scorer

from sprout.filters.fast_rouge import dedup_greedy

REPO = Path(__file__).resolve().parent.parent


def _pool(text: str) -> list[str]:
    return [item.strip() for item in text.split(";") if item.strip()]


TOPICS = _pool("""
the water cycle; photosynthesis in desert plants; the French Revolution; compound interest; black holes;
remote work; electric cars; the history of jazz; climate change in coastal cities; sleep hygiene; volcanoes;
the immune system; machine learning bias; urban gardening; the Roman Empire; ocean acidification; honeybees;
public libraries; the printing press; cryptocurrency scams; first aid for burns; the Silk Road;
quantum computing; vaccines; recycling plastics; the stock market; meditation; wildfires in California;
the moon landing; minimum wage debates; coral reefs; social media addiction; renewable energy storage;
ancient Egyptian medicine; the causes of inflation; migrating birds; password security; a healthy breakfast;
the Great Depression; learning a second language; the theory of evolution; antibiotic resistance;
self-driving trucks; the Olympic Games; desert survival; the human heart; supply chains; chess openings;
tea ceremonies in Japan; earthquakes; the invention of the telephone; tidal energy;
time management for students; rainforest deforestation; opera; composting at home; the life of Marie Curie;
job interviews; budget travel in Europe; the Cold War; glaciers; online privacy; the Mediterranean diet;
volunteering; nuclear fusion; video game design; the Amazon river; dinosaurs; mental health at work;
the Internet of Things; bread baking; democracy in ancient Athens; hurricanes; fast fashion; space tourism;
the Renaissance; solar panels on apartment buildings; friendship; procrastination; beekeeping; typography;
the Byzantine Empire; cloud computing costs; marathon training; fermentation; the metric system; lighthouses;
sign language; tax returns; submarine cables; penguins; street food in Mexico City; origami; the Black Death;
wind turbines; jury duty; urban noise pollution; chocolate making; the Hubble telescope; mushrooms; clocks;
paper money; public transport in Tokyo; skateboarding; the Gold Rush; vertical farming; sourdough starters;
open source licenses; hiking safety; the Magna Carta; octopuses; noise-cancelling headphones; tsunamis;
board game design; the Apollo program; cheese aging; coffee farming in Ethiopia; handwriting; bicycle repair
""")
FORMS = _pool("""
a short poem; a limerick; a haiku; a blog post; a news headline; a tweet; a product description;
a short story; a persuasive essay; a dialogue between two friends; a list of five facts; a quiz with answers;
a lesson plan; an email to a manager; a speech for a graduation; a riddle; a song chorus; a movie pitch;
a recipe; a FAQ section; a step-by-step guide; a one-paragraph summary; a debate outline;
a children's bedtime story; a job advertisement
""")
ASPECTS = _pool("""
the history of; the science behind; common myths about; the economics of; the future of; the ethics of;
safety rules for; beginner mistakes in; the environmental impact of; famous people associated with;
recent debates about; the vocabulary of; careers related to; how children learn about; local traditions around;
the best books on; the math behind; the psychology of; the hidden costs of; surprising facts about;
regional differences in; the daily routine of people who study; the unanswered questions in; the role of women in;
the strangest stories about; what scientists still get wrong about; a short timeline of; the global politics of;
everyday uses of; the art inspired by; open problems in; small experiments that demonstrate
""")
AUDIENCES = _pool("""
a five-year-old; a busy executive; high school students; a retired engineer; first-time voters;
a skeptical scientist; tourists visiting for one day; a non-native English speaker; new parents;
a history teacher; software developers; a grandmother who loves gardening; small business owners;
nurses on night shift; a group of curious ten-year-olds; my book club; an audience of farmers; a new employee;
university freshmen; a friend who hates reading; podcast listeners; city council members; amateur astronomers
""")
CONSTRAINTS = _pool("""
in under 100 words; using only simple words; with exactly three bullet points; without using the letter e;
in a humorous tone; in a formal tone; ending with a question; including one surprising statistic;
with a catchy title; as a numbered list; in the second person; using a metaphor from cooking;
in two paragraphs; with a counterargument at the end; in the voice of a pirate; citing one historical example;
as a table with two columns; in rhyming couplets; with a short glossary at the end;
in the style of a sports commentator; with one analogy from football; avoiding technical jargon;
in exactly five sentences; from the point of view of a cat
""")
EXTRAS = _pool("""
Keep it short.; Use British spelling.; Do not mention any brand names.; Add a one-line summary at the end.;
Make it suitable for reading aloud.; Include at least one concrete example.; Avoid clichés.;
Assume the reader knows nothing about the subject.; Finish with a practical takeaway.; Be honest about uncertainty.;
Keep every sentence under fifteen words.; Mention one common mistake.; Use headings.; Write it for a printed flyer.
""")
THINGS = _pool("""
facts; tips; questions; examples; arguments; misconceptions; predictions; analogies; quiz questions; slogans;
discussion prompts; book recommendations; research ideas; interview questions; fun activities; warning signs
""")
EVENTS = _pool("""
a workshop; a school assembly; a podcast episode; a museum tour; a birthday party; a team-building day;
a weekend course; a science fair booth; a library exhibition; a radio interview
""")
TASKS = [
    "Write {form} about {topic}", "Compose {form} on {topic}", "Explain {topic}", "Summarize {topic}",
    "Describe {topic}", "Give {n} {things} about {topic}", "Brainstorm {n} {things} related to {topic}",
    "Compare {topic} with {topic2}", "Plan {event} themed around {topic}", "Teach {topic}",
    "Draft {form} persuading people to care about {topic}", "List {n} {things} on {topic}",
    "Tell me about {topic}", "Create {form} that introduces {topic}", "Outline the pros and cons of {topic}",
    "Turn my notes on {topic} into {form}", "Why do people argue about {topic}? Give {n} {things}",
    "Is it true that {topic} is overrated? Discuss", "Suggest {n} {things} for {event} about {topic}",
]
FILLERS = "please also just really briefly clearly now then carefully simply quickly the a this given".split()
NUMBERS = "two three four five six seven eight ten".split()


def _clauses(seeds: list[str]) -> list[str]:
    parts = []
    for s in seeds:
        parts += [p.strip() for p in re.split(r"(?<=[.?!])\s+|,\s+(?:and|but|then)\s+|;\s+", s) if len(p.split()) >= 3]
    return parts


def _perturb(text: str, rng: random.Random) -> str:
    """A near-duplicate: 1-3 word drops, adjacent swaps, insertions, case or punctuation changes."""
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        k = rng.randrange(len(words))
        if op == 0 and len(words) > 3:
            del words[k]
        elif op == 1 and k + 1 < len(words):
            words[k], words[k + 1] = words[k + 1], words[k]
        elif op == 2:
            words.insert(k, rng.choice(FILLERS))
        elif op == 3:
            words[k] = words[k].upper() if rng.random() < 0.5 else words[k].capitalize()
        else:
            words[k] = words[k].rstrip(".,?!:;") + rng.choice([",", ";", " -", "!", ""])
    return " ".join(words)


def _long_pair(out: list[str], rng: random.Random) -> list[str]:
    """A long text (65-160 tokens: several earlier items run together) and, after it, a longer one that holds all of
    it in order with extra words, sized so ROUGE-L F lands just above, at or just below 0.7 (2L/(L+m) vs 0.7): the
    shape where rapidfuzz's score cut-off hid pairs (one text inside the other, longer than 64 tokens)."""
    parts: list[str] = []
    while len(" ".join(parts).split()) < rng.randint(65, 160):
        parts.append(rng.choice(out))
    short = " ".join(parts)
    n = len(short.split())
    m = int(n * (2 / 0.7 - 1)) + rng.choice([-1, 0, 1])  # F(n, m) = 2n/(n+m): just above, about at, just below 0.7
    words = short.split()
    while len(words) < m:
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS + NUMBERS))
    return [short, " ".join(words)]


def build_corpus(size: int, seed: int = 0, dup_rate: float = 0.12, long_rate: float = 0.01) -> list[str]:
    seeds = [json.loads(line)["instruction"] for line in (REPO / "seeds" / "general.jsonl").open()]
    clauses = _clauses(seeds)
    rng = random.Random(seed)

    def topic() -> str:
        subject = rng.choice(TOPICS) if rng.random() < 0.8 else rng.choice(clauses).rstrip(".?!").lower()
        return f"{rng.choice(ASPECTS)} {subject}" if rng.random() < 0.75 else subject

    def task() -> str:
        text = rng.choice(TASKS).format(form=rng.choice(FORMS), topic=topic(), topic2=topic(), n=rng.choice(NUMBERS),
                                        things=rng.choice(THINGS), event=rng.choice(EVENTS))
        if rng.random() < 0.6:
            text += f" for {rng.choice(AUDIENCES)}"
        if rng.random() < 0.5:
            text += f", {rng.choice(CONSTRAINTS)}"
        text += "?" if text.startswith(("Why", "Is")) else "."
        return text + (f" {rng.choice(EXTRAS)}" if rng.random() < 0.4 else "")

    out = list(seeds)
    while len(out) < size:
        r = rng.random()
        if r < long_rate:  # a long text and, right after it, a longer one holding it (see _long_pair)
            out += _long_pair(out, rng)
        elif r < long_rate + dup_rate:  # a near-duplicate of something recent or of anything earlier
            src = out[-rng.randint(1, min(200, len(out)))] if rng.random() < 0.5 else rng.choice(out)
            out.append(_perturb(src, rng))
        elif r < long_rate + dup_rate + 0.15:  # a seed clause recombined with a clause of another seed or a new task
            other = rng.choice(clauses) if rng.random() < 0.3 else task()
            out.append(f"{rng.choice(clauses).rstrip('.?!')}, then {other[0].lower()}{other[1:]}")
        else:
            out.append(task())
    return out[:size]


def reference_greedy(texts: list[str], threshold: float) -> list[int]:
    """What RougeDedup does with RougeIndex: score against every kept text with rouge-score; keep if <= threshold."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept: list[int] = []
    for k, text in enumerate(texts):
        if all(scorer.score(texts[j], text)["rougeL"].fmeasure <= threshold for j in kept):
            kept.append(k)
    return kept


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref-sizes", type=int, nargs="*", default=[500, 1000, 2000],
                    help="prefixes run by both the rouge-score reference and FastRougeIndex")
    ap.add_argument("--sizes", type=int, nargs="*", default=[20000, 50000], help="prefixes run by FastRougeIndex only")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    corpus = build_corpus(max(args.ref_sizes + args.sizes + [1]), args.seed)
    print(f"corpus: {len(corpus)} instructions from seeds/general.jsonl, ROUGE-L threshold {args.threshold}")
    print(f"{'size':>7} {'kept':>7} {'dropped':>8} {'rouge-score s':>14} {'fast s':>8} {'speedup':>9}  identical")
    ok = True
    for size in args.ref_sizes:
        texts = corpus[:size]
        t0 = time.perf_counter()
        ref = reference_greedy(texts, args.threshold)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = dedup_greedy(texts, args.threshold)
        t_fast = time.perf_counter() - t0
        same = ref == fast
        ok &= same
        print(f"{size:>7} {len(fast):>7} {1 - len(fast) / size:>8.1%} {t_ref:>14.2f} {t_fast:>8.3f} "
              f"{t_ref / t_fast:>8.0f}x  {same}")
    for size in args.sizes:
        texts = corpus[:size]
        t0 = time.perf_counter()
        fast = dedup_greedy(texts, args.threshold)
        t_fast = time.perf_counter() - t0
        print(f"{size:>7} {len(fast):>7} {1 - len(fast) / size:>8.1%} {'-':>14} {t_fast:>8.3f} {'-':>9}  -")
    print(f"peak memory (ru_maxrss): {_peak_mib():.0f} MiB")
    if not ok:
        print("MISMATCH: FastRougeIndex kept a different set than rouge-score", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
