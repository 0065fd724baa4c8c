"""Train the stages of a `sprout mix` in order, each one going on from the adapter the previous one left.

A multi-stage schedule (task data first, then dialogue data with some task data kept against forgetting) only
works if stage 2 starts where stage 1 ended: one LoRA adapter, trained on each stage file in turn. Each stage is an
ordinary `sprout train` run in `<out_dir>/<stage file stem>/`, so its metrics, loss curve and adapter can be read
(and evaluated) on their own; the last stage's adapter is the result.
"""

from __future__ import annotations

import json
from pathlib import Path

from sprout.core.errors import UserError
from sprout.io.jsonl import atomic_write
from sprout_trainer.config import TrainConfig
from sprout_trainer.train import run_train

MANIFEST = "mix.json"


def stage_files(mix_dir: Path) -> list[tuple[str, Path]]:
    """(stage name, file) in training order, as `sprout mix` recorded them in mix.json."""
    manifest = Path(mix_dir) / MANIFEST
    try:
        stages = json.loads(manifest.read_text(encoding="utf-8"))["stages"]
        files = [(str(stage["name"]), Path(mix_dir) / stage["file"]) for stage in stages]
    except FileNotFoundError:
        raise UserError(f"{manifest} not found. Fix: pass the out_dir of a `sprout mix` run, e.g. out/mix.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest}: not a mix manifest ({exc}). Fix: rerun `sprout mix`.") from None
    missing = [str(path) for _, path in files if not path.is_file()]
    if not files or missing:
        raise UserError(f"{manifest}: stage file(s) missing: {missing or 'no stages'}. Fix: rerun `sprout mix`.")
    return files


def run_stages(config: TrainConfig, mix_dir: Path, log=print) -> dict:
    """Each stage trains the previous stage's adapter further (the first starts from `config.init_adapter`, or a
    fresh adapter). Returns a summary per stage; `<out_dir>/stages.json` records it."""
    files = stage_files(mix_dir)
    out_dir, adapter, summaries = Path(config.out_dir), config.init_adapter, []
    for number, (name, path) in enumerate(files, 1):
        log(f"stage {number}/{len(files)} {name}: {path}" + (f", from {adapter}" if adapter else ""))
        stage_config = config.model_copy(update={"data": path, "out_dir": out_dir / path.stem, "init_adapter": adapter})
        summary = run_train(stage_config, log=log)
        if "rank" in summary:  # another process of `accelerate launch`: the main one writes and reports
            return summary
        summaries.append({"stage": name, "data": str(path), "init_adapter": str(adapter) if adapter else None,
                          **summary})
        adapter = out_dir / path.stem / "adapter"
    result = {"out_dir": str(out_dir), "mix": str(mix_dir), "adapter": str(adapter), "stages": summaries}
    atomic_write(out_dir / "stages.json", json.dumps(result, indent=2) + "\n")
    return result
