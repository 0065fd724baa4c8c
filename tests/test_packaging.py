"""`pip install .` gives a `sprout` that runs from any directory: a real (non-editable) wheel, built from the
checkout and installed into a fresh venv, carries the code, the prompts, the shipped seeds, the report templates, the
trainer's chat templates and the stopword list, and a tiny `sprout data` runs with it from a folder that is not the
checkout.

The fresh venv (`python -m venv --without-pip`, the interpreter that runs the tests) sees the already-installed
dependencies through one line in a .pth file: the test environment's site-packages. A .pth line only adds a path;
the .pth files inside it are not run, so the checkout's own (editable) install there stays invisible, and the test
checks it is. pip and setuptools come from that path too, so the wheel is built with the same build backend as the
checkout (the ensurepip copy is older than pyproject's `setuptools>=68`), offline, without build isolation.

The wheel is built from a copy of the working tree (no .git, venvs, runs or build folders): an in-tree build would
leave build/ in the checkout, and a stale build/lib could carry a deleted module into the next wheel. The copy keeps
the repository's links (pipeline/sprout/assets/prompts -> prompts/), as a clone has them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

NOT_SOURCE = (".git", ".venv", "venv", "out", "models", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
              ".ruff_cache", ".hypothesis", ".stamp-*")
PACKAGE_ROOTS = {"sprout": REPO / "pipeline" / "sprout", "sprout_trainer": REPO / "trainer" / "sprout_trainer"}


def files_under(root: Path, pattern: str = "*") -> set[str]:
    """Files below root (following its links, as the build does), as paths relative to root."""
    return {p.relative_to(root).as_posix() for p in root.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


def expected_wheel_files() -> set[str]:
    """Every code and data file the wheel must carry: each package's modules, the prompts and shipped seeds (under
    sprout/assets/, from the root's prompts/ and seeds/), the report and trainer templates, the stopword list."""
    expected = {f"{name}/{rel}" for name, root in PACKAGE_ROOTS.items() for rel in files_under(root, "*.py")}
    expected |= {f"sprout/assets/prompts/{rel}" for rel in files_under(REPO / "prompts")}
    expected |= {f"sprout/assets/seeds/{rel}" for rel in files_under(REPO / "seeds")}
    expected |= {f"sprout/reports/templates/{rel}" for rel in files_under(PACKAGE_ROOTS["sprout"] / "reports"
                                                                          / "templates")}
    expected |= {f"sprout_trainer/templates/{rel}" for rel in files_under(PACKAGE_ROOTS["sprout_trainer"]
                                                                          / "templates")}
    expected |= {f"sprout/review/static/{rel}" for rel in files_under(PACKAGE_ROOTS["sprout"] / "review" / "static")}
    expected.add("sprout/core/data/stopwords_en.txt")
    return expected


def run(command: list, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)  # a hang guard, not a timing
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def report_of(python: Path, code: str, cwd: Path, env: dict) -> dict:
    return json.loads(run([python, "-c", code], cwd, env).stdout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel of this checkout installed; yields (venv, wheel, a folder elsewhere, env)."""
    base = tmp_path_factory.mktemp("packaging")
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    # The environment of a user's shell: nothing pointing at the checkout (the suite may run with PYTHONPATH set).
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env |= {"PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "COLUMNS": "200"}

    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], elsewhere, env)
    python = venv / "bin" / "python"
    site = Path(report_of(python, "import json, sysconfig; print(json.dumps(sysconfig.get_paths()['purelib']))",
                          elsewhere, env))
    ours = Path(sysconfig.get_paths()["purelib"])  # the test environment's site-packages: the dependencies
    assert site != ours and site.is_relative_to(venv)
    (site / "dependencies.pth").write_text(f"{ours}\n", encoding="utf-8")

    # The dependencies are visible; the checkout's own install is not (its .pth finder is not run from there).
    seen = report_of(python, "import importlib.util as u, json; print(json.dumps({n: u.find_spec(n) is not None "
                             "for n in ('typer', 'pydantic', 'pip', 'setuptools', 'sprout', 'sprout_trainer')}))",
                     elsewhere, env)
    assert seen == {"typer": True, "pydantic": True, "pip": True, "setuptools": True, "sprout": False,
                    "sprout_trainer": False}

    source = base / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    assert (source / "pipeline" / "sprout" / "assets" / "prompts").is_symlink()  # the links travel as links
    dist = base / "dist"
    run([python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", dist, source],
        elsewhere, env)
    wheel = next(dist.glob("sprout-*.whl"))
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], elsewhere, env)
    return venv, site, wheel, elsewhere, env


def test_the_wheel_carries_code_prompts_seeds_templates_and_stopwords(installed):
    venv, site, wheel, elsewhere, env = installed
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if not n.endswith("/")}
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    missing = expected_wheel_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    for name in ("sprout/assets/prompts/self_instruct/new_tasks.yaml", "sprout/assets/seeds/general.jsonl",
                 "sprout/reports/templates/report.html.j2", "sprout_trainer/templates/chatml.jinja",
                 "sprout/core/data/stopwords_en.txt"):
        assert sizes[name] > 0, name  # a file with content, not a link's target path
    prompts = site / "sprout" / "assets" / "prompts"
    assert not prompts.is_symlink() and (prompts / "self_instruct" / "new_tasks.yaml").is_file()


def test_sprout_runs_from_the_fresh_venv_and_not_from_the_checkout(installed):
    venv, site, wheel, elsewhere, env = installed
    found = report_of(venv / "bin" / "python", (
        "import json, sys, importlib.metadata as m, sprout, sprout_trainer, sprout.core.prompts as p\n"
        "print(json.dumps({'sprout': sprout.__file__, 'trainer': sprout_trainer.__file__,"
        " 'prompts': str(p.PROMPTS_DIR),"
        " 'finders': [k for k in sys.modules if 'editable' in k],"
        " 'commands': sorted({e.value for e in m.entry_points(group='sprout.commands')})}))"), elsewhere, env)
    for key in ("sprout", "trainer", "prompts"):
        assert Path(found[key]).is_relative_to(site), (key, found[key])
    assert found["finders"] == []
    assert found["commands"] == ["sprout_trainer.cli:register"]

    result = run([venv / "bin" / "sprout", "--help"], elsewhere, env)
    listed = {line.strip("│ ").split()[0] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert {"data", "filter", "mix", "train", "eval", "merge", "chat", "seeds", "templates", "inspect",
            "curate"} <= listed, result.stdout


def test_a_tiny_data_run_from_another_directory(installed, model_dir):
    """A user's folder: their seeds (a copy of ours), their config; the embedded model already converted (reused
    through SPROUT_MODELS_DIR, not converted again)."""
    venv, site, wheel, elsewhere, env = installed
    shutil.copyfile(REPO / "seeds" / "general.jsonl", elsewhere / "my_seeds.jsonl")
    (elsewhere / "my_config.yaml").write_text(
        "out_dir: run\ncache: cache/responses.sqlite\nseeds: [my_seeds.jsonl]\n"
        "seed: 2\n"  # the kill test's seed: 20 s on one core against 28 s for the default 42
        "backend: {kind: local, model: embedded}\n"
        "generators:\n"
        "  self_instruct:\n"
        "    target: 1\n"
        "    requests_per_batch: 4\n"
        "    tasks_per_batch: 2\n"  # as tests/test_kill_resume.py's small run: one task found in about a minute
        "    sampling: {temperature: 0.7, top_p: 0.5, presence_penalty: 2.0, max_tokens: 160}\n"
        "    instance_sampling: {temperature: 0.7, top_p: 0.9, max_tokens: 128}\n", encoding="utf-8")
    result = run([venv / "bin" / "sprout", "data", "--config", "my_config.yaml"], elsewhere,
                 env | {"SPROUT_MODELS_DIR": str(model_dir.parent)})
    assert "Preparing the embedded model" not in result.stderr  # the converted model was reused
    out = elsewhere / "run"
    for name in ("examples.jsonl", "report.json", "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, (name, result.stderr[-3000:])
    examples = [json.loads(line) for line in (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert examples and all(e["instruction"] and e["output"] for e in examples)
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))
