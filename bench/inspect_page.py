"""Is `sprout inspect` responsive on a large run? Builds a run of N rows (default 100,000: 70% accepted, 30% rejected
by a handful of rules, evolution chains, near-duplicate neighbours, classification labels), then measures in a real
headless Chromium (Debian's chromium, through Playwright):

- index: building the run's SQLite index (once per version of the run's files);
- first rows: from opening the page to the first page of rows shown;
- facet: from ticking a facet value to the filtered rows and recounted facets shown;
- search: from typing a word to the matching rows shown (the page waits 150 ms for more keys; included).

Each is also measured on a run a tenth the size in the same process: the ratio says how the page scales.

    python bench/inspect_page.py [--rows 100000] [--repeats 3]
    python bench/inspect_page.py --screenshots DIR --run out/data   # the README's pictures, from a real run
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sprout.core.records import Lineage, Record, Rejection  # noqa: E402
from sprout.review.run_index import build_index, open_index  # noqa: E402
from sprout.review.server import Inspector, make_server  # noqa: E402
from tests.browser import chromium_page  # noqa: E402

VERBS = ["Write", "Explain", "Summarise", "List", "Classify", "Translate", "Describe", "Compare", "Rewrite", "Name"]
TOPICS = ["the tides", "a bread recipe", "volcanoes", "chess openings", "honey bees", "glass making", "star maps",
          "river deltas", "old clocks", "paper kites", "solar panels", "city parks", "tax forms", "sea shanties"]
RULES = ["rouge_l", "word_count", "refusal", "judge:equal", "empty_output", "format_leak"]


def make_run(folder: Path, rows: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    accepted, rejected, previous = [], [], []
    for i in range(rows):
        instruction = (f"{rng.choice(VERBS)} {rng.choice(TOPICS)} for reader {i % 997} in "
                       f"{rng.randint(2, 9)} sentences, mentioning item {i}.")
        evolved = previous and rng.random() < 0.3
        parent = rng.choice(previous) if evolved else None
        lineage = Lineage(generator="evol_instruct" if evolved else rng.choice(["self_instruct", "pair_synthesis"]),
                          operation=rng.choice(["deepen", "concretize"]) if evolved else "input_first",
                          parent_ids=[parent.id] if parent else [], round=(parent.lineage.round + 1) if parent else 0,
                          seed_ids=[f"seed_{rng.randint(1, 175)}"], prompts={"input_first": "0123abcd4567"},
                          sampling={"temperature": 0.7, "seed": i}, stage="instances")
        label = rng.choice(["True", "False"]) if lineage.generator == "pair_synthesis" else None
        record = Record(instruction=instruction, output=" ".join(rng.choices(TOPICS, k=12)), label=label,
                        lineage=lineage)
        if rng.random() < 0.3:
            rule = rng.choice(RULES)
            neighbour = {"id": previous[-1].id, "fields": {"instruction": previous[-1].instruction}} \
                if rule == "rouge_l" and previous else None
            rejected.append(Rejection(rule=rule, reason=f"dropped by {rule}", record=record, stage="instances",
                                      score=0.8 if neighbour else None, neighbour=neighbour))
        else:
            accepted.append(record)
            previous = (previous + [record])[-200:]
    (folder / "examples.jsonl").write_text("".join(r.to_json() + "\n" for r in accepted))
    (folder / "rejected.jsonl").write_text("".join(r.to_json() + "\n" for r in rejected))
    return folder


def serve(run_dir: Path):
    server = make_server(Inspector(run_dir, open_index(run_dir), run_dir / "marks.jsonl"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def measure(run_dir: Path, repeats: int) -> dict[str, float]:
    started = time.perf_counter()
    build_index(run_dir, run_dir / ".sprout-inspect.sqlite")
    times = {"index": time.perf_counter() - started}
    server, url = serve(run_dir)
    samples: dict[str, list[float]] = {"first rows": [], "facet": [], "search": []}
    try:
        with chromium_page() as (page, problems):
            for _ in range(repeats):
                started = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-loaded] #rows tr")
                samples["first rows"].append(time.perf_counter() - started)
                for name, action in (("facet", lambda: page.check('input[data-facet="rule"][data-value="rouge_l"]')),
                                     ("search", lambda: page.fill("#search", "volcanoes reader"))):
                    before = page.evaluate("document.body.dataset.loaded")
                    started = time.perf_counter()
                    action()
                    page.wait_for_function(f"document.body.dataset.loaded !== '{before}'")
                    samples[name].append(time.perf_counter() - started)
            if problems:
                raise SystemExit(f"the page reported errors: {problems}")
    finally:
        server.shutdown()
        server.server_close()
    return times | {name: statistics.median(values) for name, values in samples.items()}


def screenshots(run_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    server, url = serve(run_dir)
    try:
        with chromium_page(1500, 900) as (page, _):
            page.goto(url)
            page.wait_for_selector("body[data-loaded] #rows tr")
            page.screenshot(path=str(out / "inspect-browse.png"))

            def then(selector: str) -> None:
                before = page.evaluate("document.body.dataset.loaded")
                page.click(selector)
                page.wait_for_function(f"document.body.dataset.loaded !== '{before}'")

            then('input[data-facet="status"][data-value="rejected"]')
            if page.query_selector('input[data-facet="rule"][data-value="rouge_l"]'):  # a neighbour to show
                then('input[data-facet="rule"][data-value="rouge_l"]')
            page.wait_for_selector("#why")
            page.screenshot(path=str(out / "inspect-rejected.png"))
            then("#clear")
            then('input[data-facet="generator"][data-value="evol_instruct"]')
            then('input[data-facet="status"][data-value="accepted"]')
            page.wait_for_selector("#lineage .step")
            page.screenshot(path=str(out / "inspect-lineage.png"))
    finally:
        server.shutdown()
        server.server_close()
    print(f"screenshots in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screenshots", type=Path)
    parser.add_argument("--run", type=Path, default=Path("out/data"))
    args = parser.parse_args()
    if args.screenshots:
        return screenshots(args.run, args.screenshots)
    with tempfile.TemporaryDirectory() as folder:
        small = measure(make_run(Path(folder) / "small", args.rows // 10), args.repeats)
        large = measure(make_run(Path(folder) / "large", args.rows), args.repeats)
    print(f"{'':12} {args.rows // 10:>10} rows {args.rows:>10} rows   ratio")
    for name in large:
        print(f"{name:12} {small[name]:>12.3f} s {large[name]:>12.3f} s  {large[name] / small[name]:6.2f}x")


if __name__ == "__main__":
    main()
