"""A sweep described in a YAML file, as ``xwq sweep GRID.yaml`` reads it::

    methods: [qmix, cw_qmix]              # one or more method names
    scenarios:                            # env/env_id pairs: "env/env_id" or {env:, env_id:}
      - matrix_game/nonmonotonic
      - {env: mpe, env_id: simple_spread_v3}
    seeds: [1, 2, 3]
    config: my_config.yaml                # optional config file (relative to this file)
    overrides: {running_steps: 20000}     # config keys fixed for every run
    search:                               # key -> values: every combination (a grid)
      learning_rate: [0.0005, 0.001]
      alpha: [0.1, 0.5]
    tune:                                 # optional, --backend ray only: through Ray Tune
      search: random                      # grid (every combination) or random
      num_samples: 4                      # random: how many points of `search` to draw
      scheduler: asha                     # none or asha (stops poor trials at evaluations)
      seed: 0                             # random: the draw's seed

Every run is a :class:`~xwq.runners.sweep.RunSpec` of kind ``benchmark``; the runs that differ
only in their seed are aggregated together, as with ``runner.benchmark(seeds=...)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xwq.common.config import read_yaml_file
from xwq.errors import MissingFileError, UsageError
from xwq.registry import closest
from xwq.runners.sweep import RunSpec, check_seeds, grid

KEYS = ("methods", "scenarios", "seeds", "config", "overrides", "search", "tune")
TUNE_KEYS = ("search", "num_samples", "scheduler", "seed")


@dataclass
class TuneSettings:
    """How Ray Tune picks the points of ``search`` and which trials it stops early."""

    search: str = "grid"  # grid or random
    num_samples: int = 1  # random: points drawn from search
    scheduler: str | None = None  # None or "asha"
    seed: int = 0  # random: seed of the draw


@dataclass
class GridFile:
    """The parsed file; :meth:`specs` is the grid of runs."""

    path: Path
    methods: list[str]
    scenarios: list[tuple[str, str]]
    seeds: list[int]
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    search: dict[str, list[Any]] = field(default_factory=dict)
    tune: TuneSettings | None = None

    def specs(self, resume: str | None = None, search: dict[str, list[Any]] | None = None,
              overrides: dict[str, Any] | None = None) -> list[RunSpec]:
        """Every method × scenario × ``search`` combination × seed (``search`` defaults to the
        file's grid; ``overrides`` go over the file's)."""
        return grid(self.methods, self.scenarios, self.seeds,
                    overrides={**self.overrides, **(overrides or {})},
                    search=self.search if search is None else search,
                    config_path=self.config, resume=resume)


def _fail(path: Path, message: str) -> UsageError:
    return UsageError(f"grid file {path}: {message}")


def _names(path: Path, data: dict, key: str) -> list:
    value = data.get(key)
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(path, f"'{key}' must be a non-empty list, got {value!r}")
    return value


def _scenario(path: Path, item: Any) -> tuple[str, str]:
    if isinstance(item, str) and item.count("/") == 1 and all(item.split("/")):
        env, env_id = item.split("/")
        return env, env_id
    if isinstance(item, dict) and set(item) == {"env", "env_id"}:
        return str(item["env"]), str(item["env_id"])
    raise _fail(path, f"a scenario is 'env/env_id' or {{env: ..., env_id: ...}}, got {item!r}")


def _check_keys(path: Path, data: Any, allowed: tuple[str, ...], prefix: str = "") -> None:
    """``data`` is a mapping of ``allowed`` keys (a misspelt key is an error, not ignored)."""
    if not isinstance(data, dict):
        raise _fail(path, f"expected {prefix.rstrip('.') or 'the file to be'} a mapping with "
                          f"keys {', '.join(allowed)}, got {data!r}")
    for key in data:
        if key not in allowed:
            raise _fail(path, f"unknown key '{prefix}{key}'; allowed: {', '.join(allowed)}."
                              f"{closest(str(key), list(allowed))}")


def _tune(path: Path, value: Any) -> TuneSettings | None:
    if value is None:
        return None
    _check_keys(path, value, TUNE_KEYS, "tune.")
    settings = TuneSettings(**value)
    if settings.search not in ("grid", "random"):
        raise _fail(path, f"tune.search must be grid or random, got {settings.search!r}")
    if settings.scheduler in ("none", "fifo"):
        settings.scheduler = None
    if settings.scheduler not in (None, "asha"):
        raise _fail(path, f"tune.scheduler must be none or asha, got {settings.scheduler!r}")
    if isinstance(settings.num_samples, bool) or not isinstance(settings.num_samples, int) \
            or settings.num_samples < 1:
        raise _fail(path, f"tune.num_samples must be a positive integer, got "
                          f"{settings.num_samples!r}")
    return settings


def load_grid_file(path: str | os.PathLike) -> GridFile:
    """Read and check a grid file (unknown keys and malformed entries are errors naming the
    file); config keys are validated when the sweep resolves its specs."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no grid file at {path}")
    data = read_yaml_file(path, f"grid file {path}")
    _check_keys(path, data, KEYS)
    for key in ("overrides", "search"):
        if not isinstance(data.get(key) or {}, dict):
            raise _fail(path, f"'{key}' must be a mapping of config keys")
    search = {}
    for key, values in (data.get("search") or {}).items():
        if not isinstance(values, list) or not values:
            raise _fail(path, f"search.{key} must be a non-empty list of values, got {values!r}")
        search[key] = values
    config = data.get("config")
    if config is not None:
        config = str((path.parent / config).resolve())  # the same file wherever a run executes
    seeds = _names(path, data, "seeds")
    try:
        seeds = check_seeds(seeds)
    except (TypeError, ValueError) as error:
        raise _fail(path, f"'seeds': {error}") from None
    return GridFile(path, [str(m) for m in _names(path, data, "methods")],
                    [_scenario(path, item) for item in _names(path, data, "scenarios")],
                    seeds, config, dict(data.get("overrides") or {}), search,
                    _tune(path, data.get("tune")))
