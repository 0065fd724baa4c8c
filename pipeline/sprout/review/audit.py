"""Auditing the filter rules by hand: `sprout inspect RUN_DIR --audit N` draws N rejects of every rule and N
accepted rows of every generator (all of them where there are fewer), the reviewer marks them, and the audit report
gives each rule's precision (the share of its drops a person agrees with: marked bad) and each generator's error
rate among accepted rows (marked bad), with 95% Wilson score intervals.

The sample is drawn once, with a seed, and kept in the run's `audit.json` (by content id, so it survives a rebuilt
index); marks come from the same marks file the page writes."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from sprout.core.errors import UserError
from sprout.io.jsonl import atomic_write

AUDIT_FILE = "audit.json"
Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion: sound at small n and at 0 or n successes, where the normal
    approximation gives intervals outside [0, 1] or of width 0."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n successes the bound is exactly 0 or 1; floating point would leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == n else min(1.0, centre + half)


def draw_sample(conn, n: int, seed: int = 0) -> dict:
    """N rows per stratum: `rule:<name>` among rejects, `generator:<name>` among accepted rows."""
    if n < 1:
        raise UserError(f"--audit {n}: the sample needs at least 1 row per rule and generator. Fix: --audit 20.")
    rng, drawn = random.Random(seed), []
    strata = [("rule", r) for (r,) in conn.execute(
        "SELECT DISTINCT rule FROM rows WHERE status = 'rejected' ORDER BY rule")] + \
        [("generator", g) for (g,) in conn.execute(
            "SELECT DISTINCT generator FROM rows WHERE status = 'accepted' ORDER BY generator")]
    populations = {}
    for kind, value in strata:
        status = "rejected" if kind == "rule" else "accepted"
        ids = [i for (i,) in conn.execute(f"SELECT DISTINCT id FROM rows WHERE status = ? AND {kind} IS ? ORDER BY id",
                                          (status, value))]
        populations[f"{kind}:{value}"] = len(ids)
        for record_id in sorted(rng.sample(ids, min(n, len(ids)))):
            drawn.append({"id": record_id, "stratum": f"{kind}:{value}"})
    return {"n": n, "seed": seed, "populations": populations, "drawn": drawn}


def load_or_draw(run_dir: Path, conn, n: int, seed: int = 0) -> dict:
    """The run's audit sample: the one in audit.json if it was drawn with this N and seed, else a new one."""
    path = Path(run_dir) / AUDIT_FILE
    if path.is_file():
        try:
            sample = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise UserError(f"{path} is not JSON. Fix: delete it; --audit draws a new sample.") from None
        if sample.get("n") == n and sample.get("seed") == seed:
            return sample
    sample = draw_sample(conn, n, seed)
    atomic_write(path, json.dumps(sample, indent=1, ensure_ascii=False) + "\n")
    return sample


def load_sample(run_dir: Path) -> dict | None:
    path = Path(run_dir) / AUDIT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise UserError(f"{path} is not JSON. Fix: delete it; --audit draws a new sample.") from None


def sample_rowids(conn, sample: dict) -> list[int]:
    """The rows of the sample in this index (a stratum's status picks the row where one id is in both files)."""
    rowids = []
    for item in sample["drawn"]:
        kind, value = item["stratum"].split(":", 1)
        if kind not in ("rule", "generator"):  # audit.json is a file on disk: only these two name a column
            raise UserError(f"audit.json: stratum {item['stratum']!r} is not rule:... or generator:.... Fix: delete "
                            "audit.json; --audit draws a new sample.")
        status = "rejected" if kind == "rule" else "accepted"
        found = conn.execute(f"SELECT rowid FROM rows WHERE id = ? AND status = ? AND {kind} IS ? LIMIT 1",
                             (item["id"], status, value)).fetchone()
        if found:
            rowids.append(found[0])
    return rowids


def audit_report(sample: dict, marks: dict[str, dict]) -> dict:
    """Per stratum: drawn, marked, marked bad; a rule's precision = bad / marked (a drop of a bad row was right), a
    generator's error rate = bad / marked."""
    strata: dict[str, dict] = {}
    for item in sample["drawn"]:
        entry = strata.setdefault(item["stratum"], {"drawn": 0, "marked": 0, "bad": 0})
        entry["drawn"] += 1
        side = "rejected" if item["stratum"].startswith("rule:") else "accepted"
        mark = marks.get((item["id"], side), {}).get("mark")
        entry["marked"] += mark is not None
        entry["bad"] += mark == "bad"
    rules, generators = [], []
    for stratum, entry in sorted(strata.items()):
        kind, name = stratum.split(":", 1)
        interval = wilson(entry["bad"], entry["marked"])
        share = entry["bad"] / entry["marked"] if entry["marked"] else None
        row = {"name": name, "population": sample["populations"].get(stratum), **entry,
               "precision" if kind == "rule" else "error_rate": share,
               "ci95": list(interval) if interval else None}
        (rules if kind == "rule" else generators).append(row)
    return {"n": sample["n"], "seed": sample["seed"], "rules": rules, "generators": generators,
            "marked": sum(s["marked"] for s in strata.values()), "drawn": len(sample["drawn"])}


def audit_markdown(report: dict) -> str:
    def share(value, interval):
        if value is None:
            return "not yet marked"
        return f"{value:.0%} (95% CI {interval[0]:.0%}–{interval[1]:.0%})"

    lines = [f"# Filter audit: {report['marked']} of {report['drawn']} sampled rows marked "
             f"(N={report['n']} per stratum, seed {report['seed']})", "",
             "## Rule precision (share of a rule's drops marked bad: the rule was right)", "",
             "| rule | rejects | sampled | marked | bad | precision |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['name']} | {r['population']} | {r['drawn']} | {r['marked']} | {r['bad']} | "
              f"{share(r['precision'], r['ci95'])} |" for r in report["rules"]]
    lines += ["", "## Accepted rows: error rate per generator (share marked bad)", "",
              "| generator | accepted | sampled | marked | bad | error rate |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {g['name']} | {g['population']} | {g['drawn']} | {g['marked']} | {g['bad']} | "
              f"{share(g['error_rate'], g['ci95'])} |" for g in report["generators"]]
    return "\n".join(lines) + "\n"
