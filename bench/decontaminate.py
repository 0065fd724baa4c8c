"""Decontamination at scale: sprout's hashed n-gram index vs naive pairwise n-gram-set intersection, same data, run.

Data (synthetic, seeded): words drawn from a Zipf rank-frequency law (s = 1.1) over a real English head — every
word of seeds/general.jsonl, ranked by its count there — and a tail of made-up words, 30,000 types in all. Eval
items are MMLU-like ({"question", "choices": [4], "answer"}, questions of 12-120 words); training rows are Alpaca
rows (instructions of 6-40 words, half with an input of 10-120 words). Some rows get a span copied from a random
eval question (13-24 words, with case, punctuation and spacing changed) in the instruction or the input: those
must be dropped. As many get a near-miss (12 copied words, 13 with one word changed, or 13 with two words swapped),
with different words around it: those must be kept.

Measured:
- sprout: `DecontaminationIndex` built over every string of every eval item, then every row's instruction and input
  looked up (O(tokens)); and the whole `run_decontaminate` on JSONL files (read, index, scan, write outputs).
- baseline, pairwise: what a plain script does — each eval text's n-grams as a set of token tuples (built once,
  untimed, to the baseline's advantage), then, per row, its n-gram set intersected with each eval text's set until
  one overlaps. Its cost is linear in rows for a fixed eval set, so it runs on a random subsample of rows and is
  extrapolated to all of them; its drops on the subsample must equal sprout's.
- reference, tuple set: one Python set of every eval n-gram as a token tuple (an index too, without hashing to ints
  or remembering the eval item): the time and memory it takes, to show what the hashed dict costs or saves.

    .venv/bin/python bench/decontaminate.py                 # 100,000 rows x 10,000 eval items
    .venv/bin/python bench/decontaminate.py --rows 20000 --eval-items 2000 --baseline-rows 200

Writes bench/results/decontaminate.json with the numbers and the machine. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sprout.filters.decontamination_index import DEFAULT_FIELDS, DecontaminationIndex, EvalText, scan, tokens
from sprout.runs.decontaminate import run_decontaminate

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "decontaminate.json"


def vocabulary(size: int, seed: int) -> tuple[list[str], list[float]]:
    """Words by rank and their cumulative Zipf weights: real words from the seed tasks first, made-up ones after."""
    counts: Counter[str] = Counter()
    for line in (REPO / "seeds" / "general.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        counts.update(re.findall(r"[a-z]+", json.dumps(row).lower()))
    words = [w for w, _ in counts.most_common() if len(w) > 1 or w in ("a", "i")]
    rng, seen = random.Random(seed), set(words)
    while len(words) < size:
        word = "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights = [1 / rank ** 1.1 for rank in range(1, size + 1)]
    return words, list(itertools.accumulate(weights))


class Corpus:
    def __init__(self, seed: int, vocab: int = 30_000):
        self.rng = random.Random(seed)
        self.words, self.cum = vocabulary(vocab, seed)

    def text(self, low: int, high: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum, k=self.rng.randint(low, high))

    def sentence(self, words: list[str]) -> str:
        return (" ".join(words).capitalize() + self.rng.choice(".?")) if words else ""

    def eval_items(self, count: int) -> list[dict]:
        return [{"question": self.sentence(self.text(12, 120)),
                 "choices": [" ".join(self.text(1, 10)) for _ in range(4)], "answer": self.rng.choice("ABCD")}
                for _ in range(count)]

    def rows(self, count: int) -> list[dict]:
        return [{"instruction": self.sentence(self.text(6, 40)),
                 "input": self.sentence(self.text(10, 120)) if self.rng.random() < 0.5 else "",
                 "output": self.sentence(self.text(5, 60))} for _ in range(count)]

    def disguise(self, words: list[str]) -> str:
        """The same tokens, written differently: case, punctuation, spacing."""
        out = []
        for word in words:
            word = word.upper() if self.rng.random() < 0.2 else word.capitalize() if self.rng.random() < 0.2 else word
            out.append(word + self.rng.choice(["", "", ",", " -", ";", "  ", "\n"]))
        return " ".join(out)

    def other(self, *avoid: str) -> str:
        while (word := self.rng.choice(self.words[50:])) in avoid:
            pass
        return word

    def plant(self, rows: list[dict], eval_items: list[dict], count: int, near: bool) -> list[int]:
        """Copy spans of eval questions into `count` random rows (near: spans that must not match)."""
        questions = [tokens(item["question"]) for item in eval_items]
        questions = [q for q in questions if len(q) >= 26]
        chosen = self.rng.sample(range(len(rows)), count)
        for k, i in enumerate(chosen):
            q = self.rng.choice(questions)
            size = 12 if near and k % 3 == 0 else 13 if near else self.rng.randint(13, 24)
            start = self.rng.randint(1, len(q) - size - 1)
            span = q[start:start + size]
            if near and k % 3 == 1:  # one word changed
                j = self.rng.randrange(size)
                span[j] = self.other(span[j])
            elif near and k % 3 == 2:  # two words swapped: still the same bag of words
                j = self.rng.randrange(1, size - 2)
                while span[j] == span[j + 1]:
                    j = self.rng.randrange(1, size - 2)
                span[j], span[j + 1] = span[j + 1], span[j]
            # Different words on both sides, so the overlap cannot grow past the span.
            words = [self.other(q[start - 1]), *span, self.other(q[start + size])]
            field = "input" if k % 2 else "instruction"
            rows[i][field] = f"{self.disguise(words)} {rows[i][field]}".strip() if field == "input" else \
                f"{rows[i][field]} {self.disguise(words)}"
        return sorted(chosen)


def eval_texts(eval_items: list[dict], file: str) -> list[EvalText]:
    return [EvalText(file, line, f"choices[{j - 1}]" if j else "question", text)
            for line, item in enumerate(eval_items, 1)
            for j, text in enumerate([item["question"], *item["choices"], item["answer"]])]


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def field_grams(text: str, n: int) -> set[tuple[str, ...]]:
    toks = tokens(text)
    return set(zip(*[toks[i:] for i in range(n)], strict=False))


def pairwise(rows: list[dict], eval_sets: list[set], n: int) -> list[int]:
    """Naive: every row against every eval text's n-gram set."""
    dropped = []
    for i, row in enumerate(rows):
        mine = set().union(*(field_grams(row[f], n) for f in DEFAULT_FIELDS))
        if mine and any(not mine.isdisjoint(grams) for grams in eval_sets):
            dropped.append(i)
    return dropped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--eval-items", type=int, default=10_000)
    ap.add_argument("--planted", type=int, default=300, help="rows with a copied eval span (to drop)")
    ap.add_argument("--near-misses", type=int, default=300, help="rows with a near-miss span (to keep)")
    ap.add_argument("--baseline-rows", type=int, default=300, help="subsample the pairwise baseline runs on")
    ap.add_argument("--n", type=int, default=13)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    corpus = Corpus(args.seed)
    eval_items, rows = corpus.eval_items(args.eval_items), corpus.rows(args.rows)
    planted = corpus.plant(rows, eval_items, args.planted, near=False)
    near = corpus.plant(rows, eval_items, args.near_misses, near=True)
    near_set = set(near) - set(planted)
    texts = eval_texts(eval_items, "eval.jsonl")
    row_tokens = sum(len(tokens(r[f])) for r in rows for f in DEFAULT_FIELDS)
    eval_tokens = sum(len(tokens(t.text)) for t in texts)
    print(f"data: {len(rows)} rows ({row_tokens:,} instruction+input tokens), {len(eval_items)} eval items "
          f"({len(texts)} texts, {eval_tokens:,} tokens); {len(planted)} planted, {len(near_set)} near-misses; "
          f"made in {time.perf_counter() - t0:.1f} s")

    # sprout: index, then scan
    rss0 = rss_mib()
    t0 = time.perf_counter()
    index = DecontaminationIndex(args.n)
    for text in texts:
        index.add(text)
    t_build = time.perf_counter() - t0
    rss_index = rss_mib() - rss0
    t0 = time.perf_counter()
    result = scan(index, list(enumerate(rows)), DEFAULT_FIELDS)
    t_scan = time.perf_counter() - t0
    dropped = sorted(line for line, _, _ in result.dropped)
    ngram_dropped = sorted(line for line, _, match in result.dropped if not match.whole)
    exact = dropped == planted
    sprout_s = t_build + t_scan
    print(f"sprout index: {len(index):,} entries built in {t_build:.2f} s (+{rss_index:.0f} MiB RSS); scan "
          f"{t_scan:.2f} s ({row_tokens / t_scan / 1e6:.2f} M tokens/s); dropped {len(dropped)}: exactly the "
          f"planted ones: {exact}; near-misses dropped: {len(set(dropped) & near_set)}")

    # reference: one set of token tuples
    rss0 = rss_mib()
    t0 = time.perf_counter()
    tuple_index: set[tuple[str, ...]] = set()
    for text in texts:
        tuple_index.update(field_grams(text.text, args.n))
    t_tbuild = time.perf_counter() - t0
    rss_tuple = rss_mib() - rss0
    t0 = time.perf_counter()
    tuple_dropped = [i for i, row in enumerate(rows)
                     if any(not tuple_index.isdisjoint(field_grams(row[f], args.n)) for f in DEFAULT_FIELDS)]
    t_tscan = time.perf_counter() - t0
    print(f"tuple-set index: {len(tuple_index):,} n-grams built in {t_tbuild:.2f} s (+{rss_tuple:.0f} MiB RSS); "
          f"scan {t_tscan:.2f} s; same drops (n-grams only, no whole short texts): "
          f"{tuple_dropped == ngram_dropped}")
    del tuple_index

    # baseline: pairwise on a subsample, extrapolated
    eval_sets = [grams for t in texts if (grams := field_grams(t.text, args.n))]
    sample = sorted(random.Random(args.seed + 1).sample(range(len(rows)), args.baseline_rows))
    sample = sorted(set(sample) | set(planted[:20]))  # some drops in the sample, to compare decisions
    t0 = time.perf_counter()
    base_dropped = pairwise([rows[i] for i in sample], eval_sets, args.n)
    t_pair = time.perf_counter() - t0
    per_row = t_pair / len(sample)
    pair_total = per_row * len(rows)
    base_same = [sample[i] for i in base_dropped] == sorted(set(sample) & set(dropped))
    print(f"pairwise baseline: {len(sample)} rows x {len(eval_sets)} eval n-gram sets in {t_pair:.2f} s = "
          f"{per_row * 1000:.1f} ms/row -> {pair_total:.0f} s extrapolated to {len(rows)} rows; same decisions on "
          f"the sample: {base_same}")

    # end to end through files
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "eval.jsonl").write_text("".join(json.dumps(item) + "\n" for item in eval_items))
        (tmp / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        t0 = time.perf_counter()
        report = run_decontaminate(tmp / "train.jsonl", [tmp / "eval.jsonl"], tmp / "kept.jsonl")
        t_e2e = time.perf_counter() - t0
    print(f"run_decontaminate on JSONL files (read, index, scan, write): {t_e2e:.2f} s; read {report['read']}, kept "
          f"{report['kept']}, dropped {report['dropped']}")

    ratio = pair_total / sprout_s
    tuple_s = t_tbuild + t_tscan
    print(f"\nsprout index + scan: {sprout_s:.2f} s vs pairwise (extrapolated): {pair_total:.0f} s -> {ratio:.0f}x "
          f"faster.\ntuple-set index: {tuple_s:.2f} s ({tuple_s / sprout_s:.2f}x sprout's time: most of the difference "
          f"is sprout's second lookup pass, for whole short eval texts) and +{rss_tuple:.0f} MiB "
          f"({rss_tuple / max(rss_index, 1):.1f}x sprout's memory), and it cannot say which eval item matched.")
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "python": platform.python_version()},
        "args": vars(args),
        "data": {"rows": len(rows), "row_tokens": row_tokens, "eval_items": len(eval_items),
                 "eval_texts": len(texts), "eval_tokens": eval_tokens, "planted": len(planted),
                 "near_misses": len(near_set)},
        "sprout": {"index_entries": len(index), "build_s": round(t_build, 3), "scan_s": round(t_scan, 3),
                   "total_s": round(sprout_s, 3), "index_rss_mib": round(rss_index, 1), "dropped": len(dropped),
                   "exactly_planted": exact, "near_misses_dropped": len(set(dropped) & near_set),
                   "end_to_end_s": round(t_e2e, 3)},
        "tuple_set_reference": {"build_s": round(t_tbuild, 3), "scan_s": round(t_tscan, 3),
                                "index_rss_mib": round(rss_tuple, 1)},
        "pairwise_baseline": {"sample_rows": len(sample), "sample_s": round(t_pair, 3),
                              "ms_per_row": round(per_row * 1000, 3), "extrapolated_s": round(pair_total, 1),
                              "same_decisions_on_sample": base_same},
        "speedup_vs_pairwise": round(ratio, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {RESULTS.relative_to(REPO)}")
    ok = exact and base_same
    if not ok:
        print("MISMATCH: the index did not drop exactly the planted rows, or the baseline disagreed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
