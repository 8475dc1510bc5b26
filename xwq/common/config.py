"""Configuration: layered YAML files and overrides, validated key by key.

Two independent layers of packaged files, then the user's (later wins):

1. ``xwq/configs/base.yaml`` — every key, its default and a one-line comment;
2. ``xwq/configs/methods/<method>.yaml`` — the algorithm and its networks (agent, learner,
   mixer, weighting, ...); ``wqmix`` is an alias of ``ow_qmix`` (:data:`METHOD_ALIASES`);
3. ``xwq/configs/envs/<env>.yaml`` then ``xwq/configs/envs/<env>/<env_id>.yaml`` — the
   environment: episode length, parallels, update ratio, ε schedule, env_kwargs, budget. Adding
   an env or a map is one file;
4. ``xwq/configs/overrides/<method>/<env>.yaml`` then ``.../<env>/<env_id>.yaml`` — only where a
   method truly needs other values on one env (e.g. a paper's per-map α); for an alias the
   files of the method it stands for are read too (the alias's own win);
5. a user's YAML file (``config_path`` / ``file_dir``);
6. keyword overrides.

Every value is checked against the type of its default in base.yaml and the rules below; an
error names the key, the layer it came from and what is allowed. A key the user sets (layers 5
and 6) to a value other than the packaged one, but which the chosen method never reads (``alpha``
for QMIX, ``double_q`` for Weighted QMIX), is an error too (:data:`USED_ONLY_BY`): it would be
silently ignored otherwise.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import yaml

from xwq.errors import ConfigError
from xwq.registry import closest, require_choice

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BASE_FILE = CONFIG_DIR / "base.yaml"

#: method names that stand for another method's files (the run keeps the name it was given)
METHOD_ALIASES: dict[str, str] = {"wqmix": "ow_qmix"}


class _Loader(yaml.SafeLoader):
    """YAML with ``1e-3`` read as a number (YAML 1.1, and so PyYAML, wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping that names a key twice is an error (PyYAML would keep the last one silently)."""
    seen: set = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue  # a complex key: PyYAML reports what is wrong with it
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice in one mapping; keep one",
                key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str | IO[str]) -> Any:
    """Parse YAML the way every config layer is parsed (safe; ``1e-3`` is a float; a key named
    twice in one mapping is an error)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)


def yaml_problem(error: yaml.YAMLError) -> str:
    """One line for a YAML error: ``line 3, column 5: expected ',' or ']'`` (PyYAML's own
    message spans several lines and repeats the file name)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if context and context_mark is not None:
        context += f" that starts at line {context_mark.line + 1}"
    return f"{where}{problem}" + (f" ({context})" if context else "")


def read_yaml_file(path: str | os.PathLike, origin: str | None = None) -> Any:
    """Parse a YAML file; a missing file, a YAML error or bytes that are not UTF-8 text raise
    one-line ConfigErrors naming the file."""
    origin = origin or str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return load_yaml(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin}: not valid YAML: {yaml_problem(error)}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{origin}: not a YAML text file (byte {error.start} is not UTF-8); "
                          "give a .yaml file of key: value lines") from None


@dataclass(frozen=True)
class Rule:
    """Constraints beyond the default's type. ``type`` is needed where the default is null."""

    type: type | tuple[type, ...] | None = None
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # inclusive upper bound
    low_open: bool = False  # the lower bound itself is not allowed
    choices: tuple | None = None
    nullable: bool = False


RULES: dict[str, Rule] = {
    "seed": Rule(low=0),
    "threads": Rule(low=1),
    "parallels": Rule(low=1),
    "test_parallels": Rule(low=1),
    "vectorize": Rule(choices=("auto", "native", "serial", "subprocess")),
    "team_reward": Rule(choices=("mean", "sum")),
    "max_episode_steps": Rule(type=int, low=1, nullable=True),
    "fc_hidden_sizes": Rule(type=list),
    "recurrent_hidden_size": Rule(low=1),
    "mixer": Rule(type=str, choices=("VDN", "QMIX"), nullable=True),
    "input_normalization": Rule(choices=("auto", "bounds", "none")),
    "state_source": Rule(choices=("env", "observations")),
    "hidden_dim_mixing_net": Rule(low=1),
    "hidden_dim_hyper_net": Rule(low=1),
    "hypernet_layers": Rule(choices=(1, 2)),
    "hidden_dim_ff_mix_net": Rule(low=1),
    "hidden_dim_star_agent": Rule(low=1),
    "weighting": Rule(type=str),
    "alpha": Rule(low=0, high=1, low_open=True),
    "learning_rate": Rule(low=0, low_open=True),
    "optimizer": Rule(choices=("rmsprop", "adam")),
    "rmsprop_alpha": Rule(low=0, high=1, low_open=True),
    "rmsprop_eps": Rule(low=0, low_open=True),
    "gamma": Rule(low=0, high=1),
    "grad_clip_norm": Rule(low=0, low_open=True),
    "sync_frequency": Rule(low=1),
    "sync_unit": Rule(choices=("episodes", "updates")),
    "training_unit": Rule(choices=("steps", "episodes")),
    "buffer_size": Rule(low=1),
    "batch_size": Rule(low=1),
    "buffer_memory_budget_mb": Rule(low=0, low_open=True),
    "start_training": Rule(low=0),
    "training_frequency": Rule(low=1),
    "start_greedy": Rule(low=0, high=1),
    "end_greedy": Rule(low=0, high=1),
    "decay_step_greedy": Rule(low=0),
    "running_steps": Rule(low=0),
    "eval_interval": Rule(low=1),
    "test_episode": Rule(low=1),
    "log_interval": Rule(low=1),
    "save_interval": Rule(low=0),
    "keep_checkpoints": Rule(low=1),
    "render_fps": Rule(low=1),
    "model_path": Rule(type=str, nullable=True),
    "ray_num_cpus": Rule(type=(int, float), low=0, low_open=True),
    "ray_num_gpus": Rule(type=(int, float), low=0),
}


class Config(SimpleNamespace):
    """The resolved configuration: attribute access (``config.learning_rate``) like XuanCe's."""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def dump(self, path: str | os.PathLike) -> None:
        """Write the resolved config as YAML; ``get_configs(file_dir=path)`` reads it back."""
        with open(path, "w") as handle:
            yaml.safe_dump(self.to_dict(), handle, sort_keys=False)


def _read_yaml(path: Path, origin: str) -> dict[str, Any]:
    data = read_yaml_file(path, origin)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _plain(key: str, value: Any, origin: str, path: str = "") -> Any:
    """``value`` as plain YAML data (what a run's config.yaml can hold and a resume compares):
    numpy scalars and arrays become Python numbers and lists, tuples lists; any other object is
    a ConfigError naming where it is."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # also np.float64, a float subclass that YAML cannot write
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(key, item, origin, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {k: _plain(key, item, origin, f"{path}.{k}") for k, item in value.items()}
    raise ConfigError(f"config key '{key}{path}' = {value!r} (from {origin}): give plain data "
                      f"(numbers, strings, lists, mappings), not a {type(value).__name__}")


def _check_value(key: str, value: Any, default: Any, origin: str) -> Any:
    """Return ``value`` (ints promoted to float where a float is expected) or raise ConfigError."""
    rule = RULES.get(key, Rule())
    value = _plain(key, value, origin)
    where = f"config key '{key}' = {value!r} (from {origin})"
    if value is None:
        if rule.nullable or (default is None and rule.type is None):
            return None
        raise ConfigError(f"{where}: null is not allowed here; give {_type_name(type(default))}")
    expected = rule.type or (type(default) if default is not None else None)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is not None:
        ok = isinstance(value, expected)
        if expected is int or expected is float:
            ok = ok and not isinstance(value, bool)
        if not ok:
            got = type(value).__name__
            raise ConfigError(f"{where}: must be {_type_name(expected)}, got {got}")
    if rule.choices is not None and value not in rule.choices:
        allowed = ", ".join(repr(c) for c in rule.choices)
        hint = closest(str(value), [str(c) for c in rule.choices])
        raise ConfigError(f"{where}: must be one of {allowed}.{hint}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        too_low = rule.low is not None and (
            value < rule.low or (rule.low_open and value == rule.low))
        too_high = rule.high is not None and value > rule.high
        if too_low or too_high:
            low = "-inf" if rule.low is None else rule.low
            high = "inf" if rule.high is None else rule.high
            bracket = "(" if rule.low_open else "["
            raise ConfigError(f"{where}: must be in {bracket}{low}, {high}]")
    return value


def _merge(config: dict, origins: dict, layer: dict, origin: str, defaults: dict) -> None:
    for key, value in layer.items():
        if key not in defaults:
            raise ConfigError(
                f"unknown config key '{key}' (from {origin}).{closest(str(key), list(defaults))}"
                f" All keys are listed with comments in {BASE_FILE}"
            )
        config[key] = _check_value(key, value, defaults[key], origin)
        origins[key] = origin


def _check_consistency(config: dict, origins: dict) -> None:
    if config["end_greedy"] > config["start_greedy"]:
        raise ConfigError(
            f"config key 'end_greedy' = {config['end_greedy']} (from {origins['end_greedy']}) "
            f"is above 'start_greedy' = {config['start_greedy']}; epsilon only decays"
        )
    sizes = config["fc_hidden_sizes"]
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                            for s in sizes):
        raise ConfigError(
            f"config key 'fc_hidden_sizes' = {sizes!r} (from {origins['fc_hidden_sizes']}): "
            "must be a non-empty list of positive integers, e.g. [64]"
        )


#: keys that only some methods read (by their learner, policy or mixer): key -> (who reads it,
#: in words; the test on the resolved config)
USED_ONLY_BY: dict[str, tuple[str, Any]] = {
    "weighting": ("Weighted QMIX (learner: WQMIX_Learner)",
                  lambda c: c["learner"] == "WQMIX_Learner"),
    "alpha": ("Weighted QMIX (learner: WQMIX_Learner)",
              lambda c: c["learner"] == "WQMIX_Learner"),
    "hidden_dim_ff_mix_net": ("Weighted QMIX (policy: Weighted_Mixing_Q_network)",
                              lambda c: c["policy"] == "Weighted_Mixing_Q_network"),
    "hidden_dim_star_agent": ("Weighted QMIX (policy: Weighted_Mixing_Q_network)",
                              lambda c: c["policy"] == "Weighted_Mixing_Q_network"),
    "double_q": ("QMIX_Learner (Weighted QMIX always takes the next actions from the online "
                 "QMIX agents)", lambda c: c["learner"] == "QMIX_Learner"),
    "hidden_dim_mixing_net": ("the QMIX mixer (mixer: QMIX)", lambda c: c["mixer"] == "QMIX"),
    "hidden_dim_hyper_net": ("the QMIX mixer (mixer: QMIX)", lambda c: c["mixer"] == "QMIX"),
    "hypernet_layers": ("the QMIX mixer (mixer: QMIX)", lambda c: c["mixer"] == "QMIX"),
}


def _check_used(config: dict, origins: dict, packaged: dict, user_origins: set[str]) -> None:
    """A key the user changed but the resolved method never reads is an error naming it."""
    for key, (users, used) in USED_ONLY_BY.items():
        if origins.get(key) in user_origins and config[key] != packaged[key] and not used(config):
            raise ConfigError(
                f"config key '{key}' = {config[key]!r} (from {origins[key]}) has no effect for "
                f"method '{config['method']}': only {users} reads it. Remove it, or choose a "
                "method that uses it")


def available_methods() -> list[str]:
    """Methods that have a defaults file, ``configs/methods/<method>.yaml``, and their aliases."""
    files = [p.stem for p in (CONFIG_DIR / "methods").glob("*.yaml")]
    return sorted(files + [alias for alias, target in METHOD_ALIASES.items() if target in files])


def available_envs() -> dict[str, list[str]]:
    """Packaged env files: ``{env: [env_id, ...]}`` from ``configs/envs`` (no import needed)."""
    root = CONFIG_DIR / "envs"
    names = {p.stem for p in root.glob("*.yaml")} | {p.name for p in root.iterdir() if p.is_dir()}
    return {name: sorted(p.stem for p in (root / name).glob("*.yaml")) for name in sorted(names)}


def packaged_layers(method: str, env: str, env_id: str) -> list[Path]:
    """The packaged files that apply to (method, env, env_id), in the order they are merged."""
    target = METHOD_ALIASES.get(method, method)
    methods = [target] if target == method else [target, method]
    layers = [CONFIG_DIR / "methods" / f"{target}.yaml",
              CONFIG_DIR / "envs" / f"{env}.yaml", CONFIG_DIR / "envs" / env / f"{env_id}.yaml"]
    for name in methods:
        layers += [CONFIG_DIR / "overrides" / name / f"{env}.yaml",
                   CONFIG_DIR / "overrides" / name / env / f"{env_id}.yaml"]
    return layers


def get_configs(
    file_dir: str | os.PathLike | None = None,
    method: str | None = None,
    env: str | None = None,
    env_id: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Resolve and validate a configuration.

    Args:
        file_dir: a user YAML file (may itself name ``method``, ``env_name``, ``env_id``).
        method, env, env_id: select the packaged defaults; when omitted they come from the user
            file, the overrides, or base.yaml, in that order of preference.
        overrides: keyword overrides, applied last.

    Raises:
        ConfigError: unknown key, wrong type, value out of range, a changed key the method does
            not read, or an unreadable file.
        UnknownNameError: unknown method.
    """
    defaults = _read_yaml(BASE_FILE, "base.yaml")
    overrides = dict(overrides or {})
    if file_dir is not None and not isinstance(file_dir, str | os.PathLike):
        raise ConfigError(f"config_path = {file_dir!r}: give the path of a YAML file (a str or "
                          f"Path), not {type(file_dir).__name__}")
    user = _read_yaml(Path(file_dir), str(file_dir)) if file_dir is not None else {}

    def pick(key: str, given: str | None) -> str:
        if given and key in overrides and overrides[key] != given:  # one of them is ignored
            raise ConfigError(
                f"config key '{key}' = {overrides[key]!r} (from override) disagrees with "
                f"{given!r} given as the {key.replace('_name', '')} to run; remove one of the "
                "two")
        value = given or overrides.get(key) or user.get(key) or defaults[key]
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' = {value!r}: must be a string")
        return value

    method = pick("method", method)
    env = pick("env_name", env)
    env_id = pick("env_id", env_id)

    require_choice("method", method, available_methods())

    config: dict[str, Any] = {}
    origins: dict[str, str] = {}
    _merge(config, origins, defaults, "base.yaml", defaults)
    for path in packaged_layers(method, env, env_id):
        if path.exists():
            _merge(config, origins, _read_yaml(path, str(path)),
                   str(path.relative_to(CONFIG_DIR)), defaults)
    config.update(method=method, env_name=env, env_id=env_id)
    packaged = dict(config)
    user_origin = str(file_dir)
    _merge(config, origins, user, user_origin, defaults)
    _merge(config, origins, overrides, "override", defaults)
    config.update(method=method, env_name=env, env_id=env_id)
    _check_consistency(config, origins)
    _check_used(config, origins, packaged, {user_origin, "override"})
    return Config(**config)
