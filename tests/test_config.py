import pytest

from sprout.config.loader import load_config
from sprout.config.run import DataConfig
from sprout.core.errors import UserError
from tests.conftest import REPO, write


def test_shipped_config_is_valid_and_matches_documented_defaults():
    config = load_config(REPO / "configs" / "data.yaml")
    assert config.generators.self_instruct.target == 40
    assert config.backend.model == "embedded"
    assert config.filters.rouge_l_threshold == 0.7
    assert config.generators.self_instruct.sampling.presence_penalty == 2.0


def test_unknown_key_names_key_line_and_valid_keys(tmp_path):
    path = write(tmp_path / "c.yaml", "out_dir: out/x\ngenerators:\n  self_instruct:\n    targt: 5\n")
    with pytest.raises(UserError) as caught:
        load_config(path)
    (detail,) = caught.value.details
    assert detail.startswith(f"{path}:4: unknown key 'generators.self_instruct.targt'")
    assert "target" in detail and "requests_per_batch" in detail


@pytest.mark.parametrize(("text", "expected"), [
    ("generators:\n  self_instruct:\n    target: -3\n",
     ":3: key 'generators.self_instruct.target': Input should be greater than 0"),
    ("backend:\n  batch_size: many\n", ":2: key 'backend.batch_size': Input should be a valid integer"),
    ("filters:\n  rouge_l_threshold: 1.5\n", ":2: key 'filters.rouge_l_threshold'"),
    ("backend:\n  kind: magic\n", ":2: key 'backend.kind': Input should be 'local'"),
])
def test_wrong_values_name_the_key(tmp_path, text, expected):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert any(expected in d for d in caught.value.details), caught.value.details


def test_bad_yaml_and_missing_file(tmp_path):
    path = write(tmp_path / "c.yaml", "out_dir: [unclosed\n")
    with pytest.raises(UserError, match=r"c.yaml:\d+: invalid YAML"):
        load_config(path)
    with pytest.raises(UserError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_set_overrides_dotted_keys():
    config = load_config(None, ["generators.self_instruct.target=3", "out_dir=out/elsewhere", "seed=7"])
    assert isinstance(config, DataConfig)
    assert config.generators.self_instruct.target == 3
    assert str(config.out_dir) == "out/elsewhere"
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        load_config(None, ["target"])


def test_set_reaches_into_lists_by_index():
    config = load_config(REPO / "configs" / "data.yaml", ["generators.pair_synthesis.0.n=6", "seeds.0=seeds/x.jsonl"])
    assert config.generators.pair_synthesis[0].n == 6 and str(config.seeds[0]) == "seeds/x.jsonl"


@pytest.mark.parametrize(("assignment", "expected"), [
    ("generators.pair_synthesis.5.n=6", "'5' is not an item of that list (it has 1; count from 0"),
    ("generators.pair_synthesis.first.n=6", "'first' is not an item of that list"),
    ("seeds.3=x.jsonl", "'3' is not an item of that list"),
])
def test_set_with_a_bad_list_index_is_one_clear_error(assignment, expected):
    with pytest.raises(UserError) as caught:
        load_config(REPO / "configs" / "data.yaml", [assignment])
    assert str(caught.value).startswith(f"--set {assignment!r}: ") and expected in str(caught.value)


def test_a_bad_value_set_in_a_list_is_named_by_its_set():
    with pytest.raises(UserError) as caught:
        load_config(REPO / "configs" / "data.yaml", ["generators.pair_synthesis.0.n=-2"])
    (detail,) = caught.value.details
    assert detail.startswith("--set 'generators.pair_synthesis.0.n=-2': key 'generators.pair_synthesis.0.n'")


def test_a_backend_takes_only_its_own_kinds_keys_and_is_local_by_default(tmp_path):
    from sprout.backends.config import LocalBackendConfig, OpenAIBackendConfig

    assert isinstance(load_config(None, ["backend.threads=2"]).backend, LocalBackendConfig)  # no `kind`: local
    served = load_config(None, ["backend.kind=openai", "backend.base_url=http://a/v1"]).backend
    assert isinstance(served, OpenAIBackendConfig) and served.base_urls == ["http://a/v1"]
    path = write(tmp_path / "c.yaml", "backend:\n  kind: openai\n  base_url: http://a/v1\n  threads: 2\n")
    with pytest.raises(UserError) as caught:
        load_config(path)
    (detail,) = caught.value.details
    assert detail.startswith(f"{path}:4: key 'backend.threads' is not a key of kind openai (it is a key of kind "
                             "local); valid keys here: kind, model")
    assert "base_url" in detail and "batch_size" not in detail
    with pytest.raises(UserError) as caught:  # in a judge's own backend too, named by its --set
        load_config(None, ["filters.judges=[{name: q, prompt: judge/quality, backend: {kind: vllm, device: cpu}}]"])
    assert "key 'filters.judges.0.backend.device' is not a key of kind vllm (it is a key of kind local)" in str(
        caught.value)


def test_a_renamed_key_is_told_its_new_name(monkeypatch, tmp_path):
    from sprout.config import loader

    monkeypatch.setitem(loader.RENAMED_KEYS, "SelfInstructConfig", {"goal": "target"})
    path = write(tmp_path / "c.yaml", "generators:\n  self_instruct:\n    goal: 5\n")
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert caught.value.details == [f"{path}:3: key 'generators.self_instruct.goal' was renamed to "
                                    "'generators.self_instruct.target'. Fix: use the new name"]
    with pytest.raises(UserError) as caught:  # a key renamed nowhere stays unknown
        load_config(None, ["generators.self_instruct.gaol=5"])
    assert "unknown key 'generators.self_instruct.gaol'; valid keys here" in str(caught.value)


def test_one_sampling_conversion_carries_every_setting():
    from sprout.config.base import SamplingConfig
    from sprout.config.filters import JudgeConfig
    from sprout.filters.build import build_judge

    config = SamplingConfig(temperature=0.3, top_p=0.8, max_tokens=9, presence_penalty=1.5, frequency_penalty=0.5)
    sampling = config.to_sampling(seed=7, stop=("\n",), n=2)
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.seed, sampling.stop, sampling.n) == (
        0.3, 0.8, 9, 7, ("\n",), 2)
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (1.5, 0.5)
    judge = build_judge(JudgeConfig(name="q", prompt="judge/quality", sampling=config), backend=None)
    assert judge.sampling == config.to_sampling()  # the judge keeps the penalties too


def test_set_kind_switches_a_backend_written_for_another_kind():
    """The shipped configs are written for the local backend (threads, device); `--set backend.kind=openai` makes
    them openai configs: the file's local-only keys are left out; a local-only key given with --set is an error."""
    served = load_config(REPO / "configs" / "data.yaml", ["backend.kind=openai", "backend.base_url=http://a/v1"])
    assert served.backend.kind == "openai" and served.backend.base_urls == ["http://a/v1"]
    assert load_config(REPO / "configs" / "data.yaml", ["backend.kind=vllm"]).backend.dtype == "auto"
    with pytest.raises(UserError, match="key 'backend.threads' is not a key of kind openai"):
        load_config(REPO / "configs" / "data.yaml", ["backend.kind=openai", "backend.base_url=u", "backend.threads=2"])
