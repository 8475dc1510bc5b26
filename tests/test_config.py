import pytest
import yaml

import xwq
from xwq.common import config as config_module
from xwq.common.config import (
    BASE_FILE,
    CONFIG_DIR,
    METHOD_ALIASES,
    USED_ONLY_BY,
    ConfigError,
    available_envs,
    available_methods,
    get_configs,
)


def test_base_yaml_documents_every_key_with_a_comment():
    lines = [line for line in BASE_FILE.read_text().splitlines()
             if line and not line.startswith("#") and not line.startswith(" ")]
    keys = yaml.safe_load(BASE_FILE.read_text())
    assert len(lines) == len(keys)
    for line in lines:
        assert "#" in line, f"base.yaml key without a comment: {line}"


def test_layers_apply_in_order(tmp_path):
    config = get_configs(method="wqmix", env="mpe", env_id="simple_spread_v3")
    assert config.learner == "WQMIX_Learner" and config.weighting == "ow"  # method file
    assert config.env_kwargs == {"N": 3, "local_ratio": 0.5, "max_cycles": 25}  # env_id file
    assert config.training_frequency == 25  # envs/<env>.yaml
    user = tmp_path / "user.yaml"
    user.write_text("learning_rate: 0.001\nbatch_size: 16\n")
    config = get_configs(user, method="cw_qmix", env="mpe", env_id="simple_spread_v3",
                         overrides={"batch_size": 8})
    assert config.learning_rate == 0.001 and config.batch_size == 8 and config.weighting == "cw"


def test_int_is_accepted_where_a_float_is_expected():
    config = get_configs(method="qmix", overrides={"learning_rate": 1, "gamma": 1})
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)


@pytest.mark.parametrize("overrides, pattern", [
    ({"learnng_rate": 0.1}, r"unknown config key 'learnng_rate' \(from override\).*"
                            r"Did you mean 'learning_rate'"),
    ({"learning_rate": "abc"}, r"'learning_rate' = 'abc' \(from override\): must be a number"),
    ({"learning_rate": -1.0}, r"'learning_rate' = -1.0 .*must be in \(0, inf\]"),
    ({"parallels": 0}, r"'parallels' = 0 .*must be in \[1, inf\]"),
    ({"gamma": 1.5}, r"'gamma' = 1.5 .*must be in \[0, 1\]"),
    ({"parallels": 2.5}, r"'parallels' = 2.5 .*must be an integer"),
    ({"double_q": "yes"}, r"'double_q' = 'yes' .*must be true/false"),
    ({"batch_size": True}, r"'batch_size' = True .*must be an integer"),
    ({"weighting": 3}, r"'weighting' = 3 .*must be a string"),  # names: test_weightings.py
    ({"mixer": "qmix"}, r"'mixer' = 'qmix' .*must be one of 'VDN', 'QMIX'.*Did you mean 'QMIX'"),
    ({"env_kwargs": [1]}, r"'env_kwargs' = \[1\] .*must be a mapping"),
    ({"fc_hidden_sizes": [64, -1]}, r"'fc_hidden_sizes' .*non-empty list of positive integers"),
    ({"end_greedy": 0.9, "start_greedy": 0.5}, r"'end_greedy' = 0.9 .*above 'start_greedy'"),
    ({"seed": None}, r"'seed' = None .*null is not allowed"),
])
def test_bad_values_raise_one_clear_error(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        get_configs(method="wqmix", env="mpe", env_id="simple_spread_v3", overrides=overrides)


def test_errors_name_the_file_they_came_from(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("gamma: 2\n")
    with pytest.raises(ConfigError, match=r"'gamma' = 2 \(from .*mine.yaml\)"):
        get_configs(user, method="qmix")
    user.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="mine.yaml: expected a mapping"):
        get_configs(user, method="qmix")
    user.write_text("a: [\n")
    with pytest.raises(ConfigError, match="mine.yaml: not valid YAML"):
        get_configs(user, method="qmix")
    with pytest.raises(ConfigError, match="config file not found"):
        get_configs(tmp_path / "absent.yaml", method="qmix")


def test_get_runner_reports_config_errors_without_building_anything(run_dirs):
    with pytest.raises(ConfigError, match="learning_rate"):
        xwq.get_runner("wqmix", "mpe", "simple_spread_v3", learning_rate="abc", **run_dirs)


def test_config_round_trip(tmp_path):
    config = get_configs(method="cw_qmix", env="mpe", env_id="simple_reference_v3",
                         overrides={"batch_size": 7, "fc_hidden_sizes": [32, 16]})
    path = tmp_path / "resolved.yaml"
    config.dump(path)
    again = get_configs(file_dir=path)
    assert again == config and again.to_dict() == config.to_dict()


def test_user_file_alone_selects_method_and_unregistered_env(tmp_path):
    user = tmp_path / "custom.yaml"
    user.write_text("method: vdn\nenv_name: my_env\nenv_id: level1\n"
                    "env_kwargs: {size: 3}\nrunning_steps: 100\n")
    config = get_configs(file_dir=user)
    assert (config.method, config.env_name, config.env_id) == ("vdn", "my_env", "level1")
    assert config.mixer == "VDN" and config.env_kwargs == {"size": 3}


def test_exponent_numbers_in_yaml_files_are_numbers(tmp_path):
    user = tmp_path / "lr.yaml"
    user.write_text("learning_rate: 1e-3\nrmsprop_eps: 1E-5\nenv_kwargs: {scale: 2e3}\n")
    config = get_configs(user, method="qmix")
    assert config.learning_rate == 0.001 and config.rmsprop_eps == 1e-5
    assert config.env_kwargs == {"scale": 2000.0}
    user.write_text("env_id: 1e3x\n")  # not a number: stays a string
    assert get_configs(user, method="qmix").env_id == "1e3x"


# --- the two layers: methods and envs ---------------------------------------------------------
def test_method_and_env_files_are_independent_layers():
    methods = {p.stem for p in (CONFIG_DIR / "methods").glob("*.yaml")}
    assert methods == {"iql", "vdn", "qmix", "ow_qmix", "cw_qmix"}
    # no per-method copies of env files: one file per env and per env_id
    assert not any((CONFIG_DIR / method).exists() for method in available_methods())
    assert available_envs()["mpe"] == ["simple_reference_v3", "simple_speaker_listener_v4",
                                       "simple_spread_v3"]
    assert available_envs()["predator_prey"] == ["punishment"]
    # the same env values for every method
    for method in available_methods():
        config = get_configs(method=method, env="predator_prey", env_id="punishment")
        assert (config.training_frequency, config.training_unit, config.env_kwargs) == (
            1, "episodes", {"punishment": -2.0})


def test_wqmix_is_an_alias_of_ow_qmix_not_a_copy():
    assert METHOD_ALIASES == {"wqmix": "ow_qmix"}
    assert not (CONFIG_DIR / "methods" / "wqmix.yaml").exists()
    alias = get_configs(method="wqmix", env="matrix_game", env_id="nonmonotonic").to_dict()
    target = get_configs(method="ow_qmix", env="matrix_game", env_id="nonmonotonic").to_dict()
    assert alias.pop("method") == "wqmix" and target.pop("method") == "ow_qmix"
    assert alias == target


@pytest.fixture
def config_copy(tmp_path, monkeypatch):
    """A copy of the packaged config folder that get_configs reads instead of the real one."""
    root = tmp_path / "configs"
    for path in CONFIG_DIR.rglob("*.yaml"):
        copy = root / path.relative_to(CONFIG_DIR)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text())
    monkeypatch.setattr(config_module, "CONFIG_DIR", root)
    monkeypatch.setattr(config_module, "BASE_FILE", root / "base.yaml")
    return root


def test_adding_a_map_is_one_env_file(config_copy):
    root = config_copy
    (root / "envs" / "mpe" / "my_map.yaml").write_text("env_kwargs: {N: 5}\nparallels: 3\n")
    for method in ("qmix", "cw_qmix"):
        config = get_configs(method=method, env="mpe", env_id="my_map")
        assert config.env_kwargs == {"N": 5} and config.parallels == 3
        assert config.training_frequency == 25  # from envs/mpe.yaml
    assert "my_map" in config_module.available_envs()["mpe"]


def test_overrides_apply_to_one_method_on_one_env_only(config_copy):
    root = config_copy
    (root / "overrides" / "ow_qmix" / "mpe").mkdir(parents=True)
    (root / "overrides" / "ow_qmix" / "mpe.yaml").write_text("alpha: 0.5\nbatch_size: 16\n")
    (root / "overrides" / "ow_qmix" / "mpe" / "simple_spread_v3.yaml").write_text(
        "alpha: 0.75\n")
    (root / "overrides" / "wqmix").mkdir()
    (root / "overrides" / "wqmix" / "mpe.yaml").write_text("batch_size: 8\n")
    spread = get_configs(method="ow_qmix", env="mpe", env_id="simple_spread_v3")
    assert (spread.alpha, spread.batch_size) == (0.75, 16)
    reference = get_configs(method="ow_qmix", env="mpe", env_id="simple_reference_v3")
    assert (reference.alpha, reference.batch_size) == (0.5, 16)
    # the alias reads its target's overrides, then its own
    alias = get_configs(method="wqmix", env="mpe", env_id="simple_spread_v3")
    assert (alias.alpha, alias.batch_size) == (0.75, 8)
    # other methods and envs are untouched
    assert get_configs(method="cw_qmix", env="mpe", env_id="simple_spread_v3").alpha == 0.1
    assert get_configs(method="ow_qmix", env="matrix_game", env_id="nonmonotonic").alpha == 0.1


@pytest.mark.parametrize("method, key, value", [
    ("qmix", "alpha", 0.5), ("vdn", "weighting", "cw"), ("iql", "hidden_dim_ff_mix_net", 128),
    ("wqmix", "double_q", False), ("cw_qmix", "double_q", False),
    ("vdn", "hypernet_layers", 1), ("iql", "hidden_dim_mixing_net", 16),
    ("qmix", "hidden_dim_star_agent", 32),
])
def test_a_changed_key_the_method_never_reads_is_an_error(method, key, value):
    with pytest.raises(ConfigError, match=rf"'{key}' = .*\(from override\) has no effect for "
                                          rf"method '{method}'"):
        get_configs(method=method, env="matrix_game", env_id="nonmonotonic",
                    overrides={key: value})


def test_keys_the_method_reads_or_leaves_unchanged_are_accepted(tmp_path):
    assert get_configs(method="wqmix", overrides={"alpha": 0.5}).alpha == 0.5
    assert get_configs(method="qmix", overrides={"double_q": False}).double_q is False
    # the packaged value, given again (a dumped config holds every key): not an error
    assert get_configs(method="qmix", overrides={"alpha": 0.1}).alpha == 0.1
    # every resolved config of every method reloads from its dump
    for method in available_methods():
        config = get_configs(method=method, env="predator_prey", env_id="punishment")
        path = tmp_path / f"{method}.yaml"
        config.dump(path)
        assert get_configs(file_dir=path) == config


def test_used_only_by_names_real_keys():
    keys = yaml.safe_load(BASE_FILE.read_text())
    assert set(USED_ONLY_BY) <= set(keys)
