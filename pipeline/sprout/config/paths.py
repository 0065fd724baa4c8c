"""Output paths in a config (`out_dir`, `cache`): checked with the config, before any work, because finding out at
the first write leaves a half-made run behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator


def in_the_way(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be made or used as an output folder (or file), or None: checked before any work (with the
    config, or by a command for its --out)."""
    try:
        if path.exists():
            if folder != path.is_dir():
                found, wanted = ("file", "folder") if folder else ("folder", "file")
                return f"{path} is a {found}, not the {wanted} the run writes"
            return None
        blocker = next((p for p in path.parents if p.exists()), Path("."))
        if not blocker.is_dir():
            return f"{blocker} is a file, so {path} cannot be made"
        if not os.access(blocker, os.W_OK | os.X_OK):
            return f"{blocker} is not writable, so {path} cannot be made"
    except OSError as exc:
        return f"not a usable path ({exc.strerror or exc})"
    return None


def _output_folder(path: Path) -> Path:
    if problem := in_the_way(path, folder=True):
        raise ValueError(f"{problem}. Fix: name a folder that does not exist yet (it is made) or a run folder")
    return path


def _output_file(path: Path) -> Path:
    if problem := in_the_way(path, folder=False):
        raise ValueError(f"{problem}. Fix: name a file path, e.g. out/cache/responses.sqlite")
    return path


OutputFolder = Annotated[Path, AfterValidator(_output_folder)]  # for every run config's `out_dir`
OutputFile = Annotated[Path, AfterValidator(_output_file)]  # for `cache`
