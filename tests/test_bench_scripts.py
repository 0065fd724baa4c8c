"""Every benchmark starts the way `make bench` runs it: `python bench/NAME.py`, which puts bench/ first on sys.path.
A bench file named like a standard-library module (bench/inspect.py did) then stands in for it in every other
benchmark's imports, and `make bench` died at its first script."""

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

FILES = sorted((REPO / "bench").glob("*.py"))
SCRIPTS = [f for f in FILES if '__name__ == "__main__"' in f.read_text()]  # engine_replay.py is generation.py's


def test_no_bench_file_is_named_like_a_standard_library_module():
    stdlib = set(sys.stdlib_module_names) | {p.stem for p in Path(sysconfig.get_paths()["stdlib"]).glob("*.py")}
    assert not [f.name for f in FILES if f.stem in stdlib]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_each_benchmark_starts_as_make_bench_runs_it(script):
    assert len(SCRIPTS) >= 10  # the benchmarks of `make bench` and bench/gpu_check.py
    done = subprocess.run([sys.executable, str(script.relative_to(REPO)), "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {script.name}")
