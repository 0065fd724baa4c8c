"""The filter report of a run: where candidates were dropped, by which rule, with examples of each drop.

report.json, written by the run, is the contract. This module only adds keys computed from it and from the run's
JSONL files, so a report can be rebuilt at any time, also for older runs and for `sprout filter` runs (no usage).
Outputs: the enriched report.json, report.md (for a terminal or a PR) and report.html (self-contained: no CDN,
no script, because the machines that open it are offline and the text in it is untrusted model output).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from sprout.core.errors import UserError
from sprout.filters.heavy_drops import heavy_drops
from sprout.io.jsonl import atomic_write
from sprout.reports.analytics import diversity

TEMPLATES = Path(__file__).with_name("templates")
EXAMPLES_PER_RULE = 3
MAX_CHARS = 300  # per string in drop_examples: enough to see what went wrong, small enough for 100 rules
DERIVED = ("funnel", "per_generator", "per_operation", "evolution", "labels", "drop_examples", "totals",
           "unreadable_lines", "diversity", "warnings")
EVOLVING = "evol_instruct"  # the generator whose rounds build on each other: its report shows each round


def build_report(run_dir: Path) -> dict:
    """report.json of `run_dir` plus the derived keys in DERIVED; the run's own keys are left as they are."""
    run_dir = Path(run_dir)
    path = run_dir / "report.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} not found. Fix: point at a run directory (the out_dir of `sprout data`).") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error}). Fix: rerun the run that wrote it.") from None
    # Derived keys are recomputed, never trusted: a report rebuilt after the JSONL files grew must follow them.
    report = {key: value for key, value in loaded.items() if key not in DERIVED}
    stages = report.get("stages") or {}
    report["funnel"] = {name: _funnel(stage) for name, stage in stages.items()}
    report["warnings"] = heavy_drops(stages, report.get("command", ""))

    unreadable: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    operations: defaultdict[str, Counter[str]] = defaultdict(Counter)
    labels: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)  # (generator, mode/task) -> label
    evolution: dict[tuple[int, str], dict] = {}  # (round, operation) -> survived, eliminated by rule

    def evolved(lineage: dict) -> dict:
        key = (int(lineage.get("round") or 0), lineage.get("operation") or "unknown")
        return evolution.setdefault(key, {"survived": 0, "eliminated": Counter()})

    texts: list[dict] = []  # instruction and output of each accepted record, for the diversity analytics
    for row in _read_jsonl(run_dir / "examples.jsonl", unreadable):
        texts.append({"instruction": row.get("instruction"), "output": row.get("output")})
        lineage = _lineage(row)
        generator = lineage.get("generator") or "unknown"
        accepted[generator] += 1
        operations[generator][lineage.get("operation") or "unknown"] += 1
        if row.get("kind") == "classification" and row.get("label") is not None:
            # FLAN operations are task/template: group by task, or each template would be its own row.
            group = str(lineage.get("operation") or "unknown").split("/", 1)[0]
            labels[generator, group][str(row["label"])] += 1
        if generator == EVOLVING:
            evolved(lineage)["survived"] += 1

    rejected: Counter[str] = Counter()
    rejected_by_rule: defaultdict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[dict]] = {}
    for row in _read_jsonl(run_dir / "rejected.jsonl", unreadable):
        record = row.get("record") if isinstance(row.get("record"), dict) else {}
        rule = str(row.get("rule") or "unknown")
        generator = _lineage(record).get("generator") or "unknown"
        rejected[generator] += 1
        rejected_by_rule[generator][rule] += 1
        if generator == EVOLVING:
            evolved(_lineage(record))["eliminated"][rule] += 1
        kept = examples.setdefault(rule, [])
        if len(kept) < EXAMPLES_PER_RULE:  # the first ones in file order: the same report for the same run
            kept.append(_drop_example(row, record))

    report["per_generator"] = {
        name: {"accepted": accepted[name], "share": _rate(accepted[name], sum(accepted.values())),
               "rejected": rejected[name], "rejected_by_rule": _by_count(rejected_by_rule[name])}
        for name in sorted(set(accepted) | set(rejected))
    }
    report["per_operation"] = {name: _by_count(operations[name]) for name in sorted(operations)}
    report["labels"] = [{"generator": g, "group": group, "labels": _by_count(counts)}
                        for (g, group), counts in sorted(labels.items())]
    report["evolution"] = [
        {"round": rnd, "operation": op, "attempted": row["survived"] + sum(row["eliminated"].values()),
         "survived": row["survived"], "eliminated": _by_count(row["eliminated"])}
        for (rnd, op), row in sorted(evolution.items())]
    # Rules in the order they ran, as in the funnel; rules only the JSONL knows (e.g. target_reached) after them.
    order = [rule for stage in stages.values() for rule in (stage.get("rules") or {})]
    ranked = sorted(examples, key=lambda rule: order.index(rule) if rule in order else len(order))
    report["drop_examples"] = {rule: examples[rule] for rule in ranked}
    n_accepted, n_rejected = sum(accepted.values()), sum(rejected.values())
    report["totals"] = {"accepted": n_accepted, "rejected": n_rejected,
                        "pass_rate": _rate(n_accepted, n_accepted + n_rejected)}
    report["unreadable_lines"] = {name: unreadable[name] for name in ("examples.jsonl", "rejected.jsonl")}
    report["diversity"] = diversity(texts)
    return report


def write_reports(run_dir: Path) -> list[Path]:
    """Write report.json (enriched), report.md and report.html into `run_dir`, each atomically; return the paths."""
    run_dir = Path(run_dir)
    report = build_report(run_dir)
    env = _environment()
    context = {"report": report, "charts": _charts(report), "usage": report.get("usage") or {},
               "per_rule": EXAMPLES_PER_RULE}
    # No sort_keys: `rules` is ordered as the rules ran, and that order is the funnel. Insertion order is stable.
    texts = {
        "report.json": json.dumps(report, indent=2, ensure_ascii=False) + "\n",
        "report.md": env.get_template("report.md.j2").render(context),
        "report.html": env.get_template("report.html.j2").render(context),
    }
    paths = []
    for name, text in texts.items():
        atomic_write(run_dir / name, text)  # temp file, fsync, os.replace: a reader never sees half a report
        paths.append(run_dir / name)
    return paths


# ---- reading ---------------------------------------------------------------------------------------------------

def _read_jsonl(path: Path, unreadable: Counter[str]) -> Iterator[dict]:
    """Objects of a JSONL file, line by line (a 100k-line run stays small in memory). A torn or invalid line,
    e.g. the last one after a kill mid-write, is counted under the file's name and skipped: a report of what
    is readable beats no report."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                yield row
            else:
                unreadable[path.name] += 1


def _lineage(record: dict) -> dict:
    lineage = record.get("lineage")
    return lineage if isinstance(lineage, dict) else {}


def _drop_example(row: dict, record: dict) -> dict:
    score = row.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        score = None  # NaN would make report.json invalid JSON
    example = {"reason": _cut(row.get("reason"))}
    example.update({key: _cut(record.get(key)) for key in ("instruction", "input", "output", "raw")})
    example["score"] = score
    return example


def _cut(text: Any) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rstrip() + "…"


# ---- numbers ---------------------------------------------------------------------------------------------------

def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _by_count(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _funnel(stage: dict) -> list[dict]:
    """candidates -> after each rule, in the order the rules ran -> accepted. `remaining` is entered minus the
    drops so far; it ends at `accepted` because entered == accepted + sum(dropped) for every stage."""
    entered, accepted = stage.get("entered", 0), stage.get("accepted", 0)
    steps = [{"rule": "candidates", "checked": None, "dropped": None, "pass_rate": None, "remaining": entered}]
    remaining = entered
    for rule, tally in (stage.get("rules") or {}).items():
        checked, dropped = tally.get("checked", 0), tally.get("dropped", 0)
        remaining -= dropped
        steps.append({"rule": rule, "checked": checked, "dropped": dropped,
                      "pass_rate": _rate(checked - dropped, checked), "remaining": remaining})
    steps.append({"rule": "accepted", "checked": entered, "dropped": entered - accepted,
                  "pass_rate": _rate(accepted, entered), "remaining": accepted})
    return steps


# ---- rendering -------------------------------------------------------------------------------------------------

def render(template: str, **context: Any) -> str:
    """A template of report_templates/ with the report filters (md_cell, pct...): other commands' reports too."""
    return _environment().get_template(template).render(context)


def _environment() -> Environment:
    # Autoescape for everything but Markdown: rule reasons and records are model output, i.e. untrusted text.
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2",),
                                                   default_for_string=True, default=True))
    env.filters.update(pct=_pct, num=_num, duration=_duration, md_cell=_md_cell, md_fence=_md_fence, money=_money)
    return env


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _money(amount: float | None, currency: str = "") -> str:
    return "—" if amount is None else f"{amount:,.4f} {currency}".strip()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{seconds:.1f}s"


def _md_cell(text: Any) -> str:
    """A Markdown table cell: a pipe or a newline would break the row, `<` could start HTML in a viewer."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _md_fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so model output can never close it early."""
    run, longest = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


STAGE_COLOURS = ("#3b6fd8", "#8e5bc4", "#d98a1f", "#2a9d8f")  # drop bars: one colour per stage


def _charts(report: dict) -> dict:
    """Chart geometry for the HTML page, in SVG user units; the template only draws it (and escapes labels)."""
    funnels = {}
    for stage, steps in report["funnel"].items():
        kinds = ["start"] + ["rule"] * (len(steps) - 2) + ["end"]
        funnels[stage] = _hbars([{"label": step["rule"], "value": step["remaining"], "kind": kind,
                                  "note": f"−{step['dropped']:,}" if kind == "rule" and step["dropped"] else ""}
                                 for step, kind in zip(steps, kinds, strict=True)])
    stages = report.get("stages") or {}
    colours = {stage: STAGE_COLOURS[i % len(STAGE_COLOURS)] for i, stage in enumerate(stages)}
    drops = [{"label": rule, "value": tally.get("dropped", 0), "kind": stage, "note": stage, "fill": colours[stage]}
             for stage, counts in stages.items() for rule, tally in (counts.get("rules") or {}).items()]
    drops.sort(key=lambda bar: -bar["value"])  # stable: ties keep the order the rules ran
    histogram = (report.get("histograms") or {}).get("rouge_l") or {}
    rule_drops: Counter[str] = Counter()
    for row in report["per_generator"].values():
        rule_drops.update(row["rejected_by_rule"])
    spread = report["diversity"]
    return {"funnels": funnels, "drops": _hbars(drops) if drops else None, "colours": colours,
            "rouge_l": _columns(histogram), "rule_drops": rule_drops,
            "nearest": _columns(spread["nearest_rouge_l"]),
            "lengths": {field: _columns(spread["lengths"][field], plot_w=420) for field in ("instruction", "output")}}


def _hbars(rows: list[dict], label_w: int = 200, bar_w: int = 600, row_h: int = 26) -> dict:
    """Horizontal bars scaled to the largest value; each row keeps its own keys (label, value, kind, note...)."""
    top = max((row["value"] for row in rows), default=0) or 1
    bars = [{**row, "y": i * row_h, "w": round(bar_w * max(row["value"], 0) / top, 1)} for i, row in enumerate(rows)]
    return {"width": label_w + bar_w + 110, "height": len(rows) * row_h, "label_w": label_w, "row_h": row_h,
            "bars": bars}


def _columns(histogram: dict, plot_w: int = 860, plot_h: int = 170) -> dict | None:
    """A vertical bar per bin; None when the run recorded no histogram, or one whose shape is off."""
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    if not counts or len(edges) != len(counts) + 1:
        return None
    top, step = max(counts) or 1, plot_w / len(counts)
    bars = [{"x": round(i * step, 1), "w": round(step - 2, 1), "h": round(plot_h * n / top, 1), "n": n,
             "lo": edges[i], "hi": edges[i + 1]} for i, n in enumerate(counts)]
    every = max(1, len(counts) // 10)  # about ten tick labels whatever the bin count
    ticks = [{"x": round(i * step, 1), "label": f"{edge:g}"} for i, edge in enumerate(edges) if i % every == 0]
    return {"width": plot_w, "height": plot_h, "bars": bars, "ticks": ticks, "total": sum(counts)}
