"""Which engine runs a local backend (backends/local_engine.py): llama.cpp for the embedded model on the CPU, else
transformers; an engine that cannot run the configured model is a user error before any work."""

import pytest

from sprout.backends import local_engine
from sprout.backends.config import LocalBackendConfig
from sprout.core.errors import UserError
from tests.test_cli import sprout


def choose(monkeypatch, installed=True, **config):
    monkeypatch.setattr(local_engine, "llama_cpp_installed", lambda: installed)
    said = []
    return local_engine.choose_engine(LocalBackendConfig(**config), log=said.append), said


def test_auto_takes_llama_cpp_for_the_embedded_model_on_the_cpu(monkeypatch):
    assert choose(monkeypatch, device="cpu") == ("llama.cpp", [])
    assert choose(monkeypatch, device="cpu", model="models/some-folder") == ("transformers", [])
    assert choose(monkeypatch, device="cpu", engine="transformers") == ("transformers", [])


def test_auto_without_llama_cpp_says_so_once_and_runs_on_transformers(monkeypatch):
    engine, said = choose(monkeypatch, installed=False, device="cpu")
    assert engine == "transformers" and len(said) == 1 and "make setup" in said[0]


@pytest.mark.parametrize(("config", "installed", "words"), [
    ({"engine": "llama.cpp", "model": "models/my-model"}, True, "runs on transformers"),
    ({"engine": "llama.cpp"}, False, "llama-cpp-python is not installed"),
])
def test_an_engine_that_cannot_run_the_model_is_a_user_error(monkeypatch, config, installed, words):
    with pytest.raises(UserError, match=words):
        choose(monkeypatch, installed=installed, device="cpu", **config)


def test_a_wrong_engine_name_and_a_folder_on_llama_cpp_stop_the_cli_with_exit_2(tmp_path):
    wrong = sprout("data", "--set", f"out_dir={tmp_path / 'a'}", "--set", "backend.engine=llamacpp")
    assert wrong.returncode == 2 and "backend.engine" in wrong.stderr and "'llama.cpp'" in wrong.stderr
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    refused = sprout("data", "--set", f"out_dir={tmp_path / 'b'}", "--set", "backend.engine=llama.cpp",
                     "--set", f"backend.model={folder}")
    assert refused.returncode == 2 and "runs on transformers" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "b").exists()
