"""`sprout mix`: proportional sampling of several datasets into one file per training stage.

Every stage's rows are split into parts — one per source, the rows kept from the previous stage, and the
pretraining text — by one largest-remainder allocation over their shares, so each part's count is its exact quota
rounded down or up, and the counts sum to the stage's size: a realised share is never more than 1/size off the
asked one. Each part then draws its rows with its own RNG (seeded from the run seed, stage and part), so changing
one share does not reshuffle the others. Everything is checked and drawn in memory; the folder is written whole,
at once, or not at all.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from sprout.config.loader import dump_resolved
from sprout.core.apportion import exact, largest_remainder
from sprout.core.errors import UserError
from sprout.datasets.mix_config import PRETRAINING, MixConfig, Where
from sprout.datasets.mix_sources import Source, chunks, read_source
from sprout.io.jsonl import atomic_directory


@dataclass
class Part:
    kind: str  # source, kept (from the previous stage's output) or pretraining
    name: str  # the source's name, the previous stage's, or `pretraining`
    label: str  # for people: "flan", "kept from task", "pretraining"
    weight: float  # the stage share it asks for
    rows: int  # its exact allocation
    available: int
    replace: bool
    picks: list[int] = field(default_factory=list)

    def summary(self, size: int) -> dict:
        return {"kind": self.kind, "name": self.name, "label": self.label, "asked_share": round(self.weight, 6),
                "asked_rows": round(self.weight * size, 3), "rows": self.rows,
                "realised_share": round(self.rows / size, 6), "available": self.available, "replace": self.replace,
                "duplicates": len(self.picks) - len(set(self.picks))}


def plan(cfg: MixConfig, sources: dict[str, Source], n_chunks: int, where: Where) -> list[list[Part]]:
    """Each stage's parts and counts; every part that cannot be drawn is a problem naming its key."""
    stages, problems, chunks_left, previous = [], [], n_chunks, 0
    for i, stage in enumerate(cfg.stages):
        pre, keep = cfg.pretraining_share(stage), stage.keep_from_previous
        names = [n for n, w in stage.shares.items() if w > 0]
        rest, total = 1 - exact(pre) - exact(keep), sum(exact(stage.shares[n]) for n in names)
        weights = [rest * exact(stage.shares[n]) / total for n in names] + [exact(keep), exact(pre)]
        counts = largest_remainder(stage.size, weights)
        parts = [Part("source", n, n, float(w), c, len(sources[n].rows), stage.replace)
                 for n, w, c in zip(names, weights, counts, strict=False)]
        if keep:
            before = cfg.stages[i - 1].name
            parts.append(Part("kept", before, f"kept from {before}", keep, counts[-2], previous, stage.replace))
        if pre:
            replace = cfg.pretraining.replace
            parts.append(Part(PRETRAINING, PRETRAINING, PRETRAINING, pre, counts[-1],
                              n_chunks if replace else chunks_left, replace))
        fix = f"set `replace: true` on stage {stage.name!r}, lower its `size` or this share"
        for part in parts:
            if part.rows > part.available and not (part.replace and part.available):
                if part.kind == PRETRAINING:
                    problems.append(f"{where('pretraining', 'path')}: stage {stage.name!r} needs {part.rows} text "
                                    f"chunk(s) but only {part.available} of {n_chunks} are left unused. Fix: more "
                                    "text, smaller chunks, a lower share, or `pretraining.replace: true`")
                elif part.kind == "kept":
                    problems.append(f"{where('stages', i, 'keep_from_previous')}: stage {stage.name!r} keeps "
                                    f"{part.rows} rows but the previous stage has {previous} (pretraining text "
                                    f"excluded). Fix: {fix}")
                elif part.available:
                    problems.append(f"{where('stages', i, 'shares', part.name)}: stage {stage.name!r} asks "
                                    f"{part.rows} rows of source {part.name!r}, which has {part.available} "
                                    f"({sources[part.name].path}). Fix: {fix}")
        if pre and not cfg.pretraining.replace:
            chunks_left -= min(chunks_left, counts[-1])
        previous = stage.size - (counts[-1] if pre else 0)
        stages.append(parts)
    if problems:
        raise UserError("the mix cannot be drawn as configured; nothing was written:", problems)
    return stages


def _draw(rng: random.Random, pool: list[int], k: int, replace: bool) -> list[int]:
    return [pool[rng.randrange(len(pool))] for _ in range(k)] if replace else rng.sample(pool, k)


def _with_mix(row: dict, mix: dict) -> dict:
    if "mix" in row:  # a row from an earlier mix keeps that provenance inside the new one
        mix = {**mix, "previous": row["mix"]}
    return {**{k: v for k, v in row.items() if k != "mix"}, "mix": mix}


def draw(cfg: MixConfig, sources: dict[str, Source], texts: list[tuple[int, str]], stages: list[list[Part]]):
    """The rows of every stage, shuffled within the stage."""
    out: list[list[dict]] = []
    unused_chunks = list(range(len(texts)))
    for stage, parts in zip(cfg.stages, stages, strict=True):
        rows = []
        for part in parts:
            rng = random.Random(f"{cfg.seed}:{stage.name}:{part.kind}:{part.name}")
            if part.kind == PRETRAINING:
                pool = list(range(len(texts))) if cfg.pretraining.replace else unused_chunks
                part.picks = _draw(rng, pool, part.rows, cfg.pretraining.replace)
                if not cfg.pretraining.replace:
                    taken = set(part.picks)
                    unused_chunks = [c for c in unused_chunks if c not in taken]
                rows += [{"text": texts[c][1], "mix": {"source": PRETRAINING, "stage": stage.name,
                                                       "line": texts[c][0], "chunk": c}} for c in part.picks]
            elif part.kind == "kept":
                kept = [i for i, row in enumerate(out[-1]) if row["mix"]["source"] != PRETRAINING]
                part.picks = _draw(rng, kept, part.rows, part.replace)
                for i in part.picks:
                    old = out[-1][i]
                    kept_from = {"stage": old["mix"]["stage"], "line": i + 1}  # its line in that stage's file
                    rows.append({**old, "mix": {**old["mix"], "stage": stage.name, "kept_from": kept_from}})
            else:
                source = sources[part.name]
                part.picks = _draw(rng, list(range(len(source.rows))), part.rows, part.replace)
                for i in part.picks:
                    line, row = source.rows[i]
                    rows.append(_with_mix(row, {"source": part.name, "stage": stage.name, "line": line}))
        random.Random(f"{cfg.seed}:{stage.name}:shuffle").shuffle(rows)
        out.append(rows)
    return out


def check_out_dir(cfg: MixConfig, force: bool) -> None:
    """An empty or new folder, or one holding only a mix: of this config, or of another one with --force."""
    out = Path(cfg.out_dir)
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return
    try:
        own = set(json.loads((out / "mix.json").read_text(encoding="utf-8"))["files"]) | {"mix.json", "config.yaml"}
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{out} holds files that are not a sprout mix ({', '.join(present[:5])}). Fix: give `out_dir` "
                        "a new or empty folder (the mix replaces the folder whole).") from None
    if foreign := [name for name in present if name not in own]:
        raise UserError(f"{out} holds files the mix there did not write ({', '.join(foreign[:5])}). Fix: move them, "
                        "or give `out_dir` another folder (the mix replaces the folder whole).")
    recorded = out / "config.yaml"
    if not force and (not recorded.is_file() or recorded.read_text(encoding="utf-8") != dump_resolved(cfg)):
        raise UserError(f"{out} holds a mix made with a different config. Fix: use another out_dir, or --force to "
                        "replace it.")


def run_mix(cfg: MixConfig, where: Where, force: bool = False) -> dict:
    check_out_dir(cfg, force)
    used = [name for name in cfg.sources if any(s.shares.get(name, 0) > 0 for s in cfg.stages)]
    problems: list[str] = []
    sources = {name: read_source(name, cfg.sources[name], problems) for name in used}
    if problems:
        raise UserError(f"{len(problems)} unusable row(s) in the sources; nothing was written:", problems[:50])
    if empty := [name for name in used if not sources[name].rows]:
        raise UserError("empty source(s); nothing was written:", [
            f"{where('sources', name)}: no rows to draw from ({sources[name].read} in {sources[name].path}"
            f"{', none matching `where`' if cfg.sources[name].where else ''})" for name in empty])
    text_cfg = cfg.pretraining
    needs_text = text_cfg is not None and any(cfg.pretraining_share(s) for s in cfg.stages)
    texts = chunks(text_cfg) if needs_text else []
    if needs_text and not texts:
        raise UserError(f"{where('pretraining', 'path')}: {cfg.pretraining.path} has no chunk of at least "
                        f"{cfg.pretraining.min_words} word(s); nothing was written.")
    stages = plan(cfg, sources, len(texts), where)
    rows = draw(cfg, sources, texts, stages)
    files = [f"stage-{i}-{stage.name}.jsonl" for i, stage in enumerate(cfg.stages, 1)]
    manifest = {
        "seed": cfg.seed, "files": files,
        "sources": {name: {"path": str(s.path), "sha256": s.sha256, "rows_in_file": s.read, "rows": len(s.rows),
                           "kinds": dict(sorted(s.kinds.items()))} for name, s in sources.items()},
        "unused_sources": [name for name in cfg.sources if name not in used],
        "pretraining": {"path": str(text_cfg.path), "chunk": text_cfg.chunk, "chunks": len(texts),
                        "sha256": hashlib.sha256(text_cfg.path.read_bytes()).hexdigest()} if needs_text else None,
        "stages": [{"name": stage.name, "file": file, "size": stage.size, "replace": stage.replace,
                    "parts": [p.summary(stage.size) for p in parts],
                    "by_source": _by_source(stage_rows)}
                   for stage, file, parts, stage_rows in zip(cfg.stages, files, stages, rows, strict=True)],
        "config": cfg.model_dump(mode="json"),
    }
    with atomic_directory(cfg.out_dir) as staging:
        for file, stage_rows in zip(files, rows, strict=True):
            (staging / file).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in stage_rows),
                                        encoding="utf-8")
        (staging / "config.yaml").write_text(dump_resolved(cfg), encoding="utf-8")
        (staging / "mix.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return manifest


def _by_source(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["mix"]["source"]] = counts.get(row["mix"]["source"], 0) + 1
    return dict(sorted(counts.items()))


def print_mix_summary(manifest: dict, out_dir: Path, console) -> None:
    """One table: per stage and part, the asked and realised share, rows drawn, and how."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="sprout mix: realised proportions", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for column in ("stage", "part", "asked", "realised", "rows", "avail.", "replace", "dups"):
        table.add_column(column, justify="left" if column in ("stage", "part", "replace") else "right",
                         no_wrap=column in ("stage", "part"), min_width=len(column))
    for stage in manifest["stages"]:
        for n, part in enumerate(stage["parts"]):
            table.add_row(escape(stage["name"]) if n == 0 else "", escape(part["label"]), f"{part['asked_share']:.1%}",
                          f"{part['realised_share']:.1%}", str(part["rows"]), str(part["available"]),
                          "yes" if part["replace"] else "no", str(part["duplicates"]))
        table.add_row("", "[b]total[/]", "100%", "100%", f"[b]{stage['size']}[/]", end_section=True)
    console.print(table)
    if manifest["unused_sources"]:
        console.print(f"note: source(s) not used by any stage: {', '.join(manifest['unused_sources'])}", markup=False)
    console.print(f"outputs: {out_dir}/" + " · ".join([*manifest["files"], "mix.json", "config.yaml"]), markup=False,
                  soft_wrap=True)
