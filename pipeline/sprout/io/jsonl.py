"""Crash-safe JSONL output: whole lines, flushed and fsynced per batch; a torn last line is cut on resume.

A run is deterministic (seeded RNG + response cache), so a restarted run regenerates the same lines in the same
order. The writer skips the lines the file already holds — checking each one matches — and appends the rest:
nothing lost, nothing doubled, even after kill -9 in the middle of a write.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sprout.core.errors import UserError


class ResumableJsonl:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = self.path.read_bytes() if self.path.exists() else b""
        complete = existing[: existing.rfind(b"\n") + 1]  # everything up to the last full line
        self._existing = complete.decode("utf-8").splitlines()
        self._handle = open(self.path, "r+b" if self.path.exists() else "wb")  # noqa: SIM115 - held for the run
        self._handle.truncate(len(complete))  # cut a torn last line left by a kill mid-write
        self._handle.seek(len(complete))
        self.written = 0  # lines this run has produced, replayed or new

    def write(self, lines: list[str]) -> None:
        fresh = []
        for line in lines:
            if self.written < len(self._existing):
                if self._existing[self.written] != line:
                    raise UserError(f"{self.path}:{self.written + 1}: the run produces a different line than the "
                                    "existing file holds (the cache or code changed). Fix: rerun with --force.")
            else:
                fresh.append(line)
            self.written += 1
        if fresh:
            self._handle.write("".join(f"{line}\n" for line in fresh).encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def atomic_write(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a staging folder beside `target`; when the block succeeds it replaces `target` in one rename, when it
    fails (or is killed) the staging folder goes and `target` is untouched. A reader never sees half a folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
