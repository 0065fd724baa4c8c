"""One run per output folder: an exclusive lock on `<out_dir>/.sprout.lock`, held for the whole run.

The lock is `flock`, so the kernel releases it when its process ends, even by kill -9: a lock can never go stale.
The file also holds the owner's pid, host and start time, for the message a second run gets; the owner empties it
when it finishes, so a non-empty file found by a run that gets the lock means the last run there was interrupted.
(flock is not reliable on some network file systems; keep out_dir on a local disk.)
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sprout.core.errors import UserError

LOCK_NAME = ".sprout.lock"


@contextmanager
def run_lock(out_dir: Path, log=print) -> Iterator[None]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "owner unknown"
        handle.close()
        raise UserError(f"{out} is in use by another sprout run ({owner}). Fix: wait for it to finish, stop it, "
                        "or give this run another out_dir.") from None
    try:
        handle.seek(0)
        if previous := handle.read().strip():
            log(f"{out}: the last run here ({previous}) was interrupted; resuming it from the cache.")
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        yield
        handle.truncate(0)  # finished: nothing to resume
        handle.flush()
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
