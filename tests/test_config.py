import pytest

from sprout.config import DataConfig, load_config
from sprout.errors import UserError
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
