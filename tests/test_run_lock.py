"""One run per out_dir: a second `sprout data` into the same folder refuses with the owner's pid; the lock dies
with its process (kill -9 included), and the next run says it resumes an interrupted one."""

import os
import signal
import subprocess
import sys

import pytest

from sprout.core.errors import UserError
from sprout.io.run_lock import LOCK_NAME, run_lock
from tests.conftest import REPO
from tests.test_cli import sprout

HOLD = "import sys, time\nfrom sprout.io.run_lock import run_lock\nwith run_lock(sys.argv[1]):\n" \
       "    print('locked', flush=True)\n    time.sleep(120)\n"


def hold_lock(out) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_run_is_refused_and_a_killed_owners_lock_is_free(tmp_path):
    out = tmp_path / "out"
    owner = hold_lock(out)
    try:
        with pytest.raises(UserError, match=rf"in use by another sprout run \(pid {owner.pid} on .*another out_dir"):
            with run_lock(out, log=print):
                pass
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    said = []
    with run_lock(out, log=said.append):  # the kernel dropped the dead owner's lock: no stale lock
        assert (out / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")
    assert said and f"pid {owner.pid}" in said[0] and "interrupted" in said[0]
    said.clear()
    with run_lock(out, log=said.append):  # the last run finished: nothing to say
        pass
    assert said == [] and (out / LOCK_NAME).read_text() == ""


def test_two_sprout_data_runs_into_one_folder(tmp_path):
    out = tmp_path / "out"
    owner = hold_lock(out)  # stands for a first `sprout data` mid-run
    try:
        second = sprout("data", "--set", f"out_dir={out}", "--set", f"cache={tmp_path / 'cache.sqlite'}")
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert second.returncode == 2 and f"pid {owner.pid}" in second.stderr and "Traceback" not in second.stderr
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the refused run wrote nothing
