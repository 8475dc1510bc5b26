"""StarCraft II micromanagement, SMAC and SMACv2, through their own classes: env ``"sc2"``.

:class:`SC2Env` (``REGISTRY_ENV["sc2"]``) is a :class:`MultiAgentEnv` around oxwhirl's
``smac.env.StarCraft2Env`` (env_id = a SMAC map, e.g. ``"3m"``, ``"5m_vs_6m"``, ``"corridor"``)
or, for env_ids ``<race>_<n>_vs_<m>`` (e.g. ``"protoss_5_vs_5"``), SMACv2's
``smacv2.env.StarCraftCapabilityEnvWrapper`` on map ``10gen_<race>`` with SMACv2's published
capability config (unit types and weights per race, surrounded-and-reflect start positions).

Neither package is on PyPI under its own name, and both need the StarCraft II binary; see
:data:`INSTALL`. The check (``check_env_id``) runs at ``get_runner`` time, before anything is
built: a missing package or SC2 folder raises :class:`MissingPackageError` (an ``ImportError``)
saying what to install.

Faithfulness to pymarl's use of SMAC:

- the team reward is SMAC's; every agent is given it, so ``team_reward: mean`` (the default)
  passes it on unchanged;
- a time limit is **truncation**, not termination: the adapter builds SMAC with
  ``continuing_episode=True`` (which only adds ``info["episode_limit"]``) and also recognises a
  timeout by its own step count when that flag is missing (the limit reached, battle not won,
  neither side wiped out);
- an SC2 protocol error (SMAC restarts the game and returns ``(0, True, {})``) ends the episode
  as truncated with reward 0 and the last good observation, and logs a warning;
- ``info`` carries, at the top level, ``battle_won``, ``dead_allies``, ``dead_enemies``,
  ``timeout`` and ``protocol_error`` as floats (a broken episode counts as not won);
- dead agents stay in the episode (zero observation, only the no-op available), as in SMAC.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.interfaces import MultiAgentEnv
from xwq.errors import ConfigError, MissingPackageError
from xwq.registry import REGISTRY_ENV, require_choice

logger = logging.getLogger(__name__)

#: SMAC's maps (smac/env/starcraft2/maps/smac_maps.py): name -> (n_agents, n_enemies, limit)
SMAC_MAPS: dict[str, tuple[int, int, int]] = {
    "3m": (3, 3, 60), "8m": (8, 8, 120), "25m": (25, 25, 150), "5m_vs_6m": (5, 6, 70),
    "8m_vs_9m": (8, 9, 120), "10m_vs_11m": (10, 11, 150), "27m_vs_30m": (27, 30, 180),
    "MMM": (10, 10, 150), "MMM2": (10, 12, 180), "2s3z": (5, 5, 120), "3s5z": (8, 8, 150),
    "3s5z_vs_3s6z": (8, 9, 170), "3s_vs_3z": (3, 3, 150), "3s_vs_4z": (3, 4, 200),
    "3s_vs_5z": (3, 5, 250), "1c3s5z": (9, 9, 180), "2m_vs_1z": (2, 1, 150),
    "corridor": (6, 24, 400), "6h_vs_8z": (6, 8, 150), "2s_vs_1sc": (2, 1, 300),
    "so_many_baneling": (7, 32, 100), "bane_vs_bane": (24, 24, 200),
    "2c_vs_64zg": (2, 64, 400),
}

#: SMACv2 env_ids: ``<race>_<allies>_vs_<enemies>`` on map ``10gen_<race>``
SMACV2_ENV_ID = re.compile(r"^(protoss|terran|zerg)_(\d+)_vs_(\d+)$")
SMACV2_EXAMPLES = ("protoss_5_vs_5", "terran_10_vs_10", "zerg_20_vs_20", "protoss_10_vs_11")

#: SMACv2's team generation per race (smacv2/examples/configs/sc2_gen_<race>.yaml)
SMACV2_TEAMS: dict[str, dict[str, Any]] = {
    "protoss": {"unit_types": ["stalker", "zealot", "colossus"], "weights": [0.45, 0.45, 0.1]},
    "terran": {"unit_types": ["marine", "marauder", "medivac"], "weights": [0.45, 0.45, 0.1],
               "exception_unit_types": ["medivac"]},
    "zerg": {"unit_types": ["zergling", "baneling", "hydralisk"], "weights": [0.45, 0.1, 0.45],
             "exception_unit_types": ["baneling"]},
}

INSTALL = """\
env 'sc2' needs StarCraft II and oxwhirl's SMAC (or SMACv2), none of which pip can find by name:
  1. SMAC:   pip install git+https://github.com/oxwhirl/smac.git
     SMACv2: pip install git+https://github.com/oxwhirl/smacv2.git   (for <race>_<n>_vs_<m>)
     Not `pip install smac`: PyPI's `smac` is SMAC3, a hyperparameter optimiser that also
     imports as `smac`; uninstall it (pip uninstall smac) if it is there.
  2. the StarCraft II binary (Linux: https://github.com/Blizzard/s2client-proto#downloads,
     e.g. SC2.4.10; the WQMIX paper used SC2.4.6.2.69232), unzipped where SC2PATH points
     (default ~/StarCraftII): export SC2PATH=/path/to/StarCraftII
  3. the SMAC maps: unzip SMAC_Maps.zip (https://github.com/oxwhirl/smac/releases) into
     $SC2PATH/Maps/ so that $SC2PATH/Maps/SMAC_Maps/3m.SC2Map exists
     (SMACv2 maps, including 32x32_flat.SC2Map, come with smacv2: smacv2/env/starcraft2/maps)."""


def sc2_path() -> Path:
    """Where pysc2 looks for StarCraft II: ``$SC2PATH`` or the platform default."""
    if os.environ.get("SC2PATH"):
        return Path(os.environ["SC2PATH"]).expanduser()
    if sys.platform == "darwin":
        return Path("/Applications/StarCraft II")
    if sys.platform == "win32":
        return Path("C:/Program Files (x86)/StarCraft II")
    return Path("~/StarCraftII").expanduser()


def parse_env_id(env_id: str) -> tuple[str, dict[str, Any]]:
    """``(package, kwargs)``: ``("smac", {map_name})`` for a SMAC map, ``("smacv2",
    {map_name, capability_config})`` for ``<race>_<n>_vs_<m>``; anything else raises
    :class:`UnknownNameError` listing the maps."""
    match = SMACV2_ENV_ID.match(env_id)
    if match:
        race, allies, enemies = match.group(1), int(match.group(2)), int(match.group(3))
        if not (1 <= allies <= enemies <= 2 * allies):
            raise ConfigError(f"env 'sc2', env_id {env_id!r}: SMACv2 needs 1 <= allies <= "
                             f"enemies, and at most twice as many enemies")
        team = {"dist_type": "weighted_teams", "observe": True, **SMACV2_TEAMS[race]}
        capability_config = {
            "n_units": allies, "n_enemies": enemies, "team_gen": team,
            "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5,
                                "map_x": 32, "map_y": 32},
        }
        return "smacv2", {"map_name": f"10gen_{race}", "capability_config": capability_config}
    require_choice("env_id", env_id, list(SMAC_MAPS), where=" for env 'sc2'",
                   hint=f"SMACv2 env_ids are <race>_<allies>_vs_<enemies>, e.g. "
                        f"{list(SMACV2_EXAMPLES)}.")
    return "smac", {"map_name": env_id}


def import_env_class(package: str) -> Any:
    """``smac.env.StarCraft2Env`` or ``smacv2.env.StarCraftCapabilityEnvWrapper``, or a
    :class:`MissingPackageError` saying what to install (and naming the SMAC3 clash)."""
    name = "StarCraft2Env" if package == "smac" else "StarCraftCapabilityEnvWrapper"
    try:
        module = importlib.import_module(f"{package}.env")
        return getattr(module, name)
    except (ImportError, AttributeError) as error:
        clash = ""
        if package == "smac" and _is_smac3():
            clash = ("\nThe `smac` found here is SMAC3 (PyPI's `smac`), not oxwhirl's SMAC.")
        raise MissingPackageError(
            f"env 'sc2': cannot import {package}.env.{name} ({error}).{clash}\n{INSTALL}"
        ) from error


def _is_smac3() -> bool:
    try:
        smac = importlib.import_module("smac")
    except ImportError:
        return False
    return hasattr(smac, "facade") or hasattr(smac, "HyperparameterOptimizationFacade") or \
        "smac3" in str(getattr(smac, "__file__", "")).lower()


def check_sc2_env_id(env_id: str) -> None:
    """At ``get_runner`` time: a known env_id, the package importable, SC2 and the map there."""
    package, kwargs = parse_env_id(env_id)
    import_env_class(package)
    root = sc2_path()
    if not root.is_dir():
        raise MissingPackageError(
            f"env 'sc2': no StarCraft II installation at {root} (set SC2PATH).\n{INSTALL}")
    if package == "smac":
        map_file = root / "Maps" / "SMAC_Maps" / f"{kwargs['map_name']}.SC2Map"
        if not map_file.is_file():
            raise MissingPackageError(
                f"env 'sc2': map file {map_file} not found.\n{INSTALL}")


@REGISTRY_ENV.register("sc2")
class SC2Env(MultiAgentEnv):
    """One SMAC / SMACv2 battle as a :class:`MultiAgentEnv` (agents ``agent_0 ...``).

    Args:
        env_id: a SMAC map (:data:`SMAC_MAPS`) or a SMACv2 ``<race>_<n>_vs_<m>``.
        **env_kwargs: passed to SMAC's constructor (``difficulty``, ``step_mul``, ``seed``,
            ``reward_*``, ``obs_*``, ...; for SMACv2 also ``capability_config`` to replace the
            default one). ``continuing_episode`` defaults to True here (it only adds the
            timeout flag to ``info``).

    Spaces: observations ``Box(obs_shape)``, actions ``Discrete(n_actions)`` (SMAC's layout:
    0 no-op, 1 stop, 2–5 move, 6+ attack/heal), state ``Box(state_shape)``,
    ``max_episode_steps`` = the map's ``episode_limit``.

    Seeding: SC2 takes its seed when the game starts, so the seed of the first
    ``reset(seed=...)`` applies (the env is rebuilt with it before SC2 launches); later seeds
    cannot change a running game and are ignored.
    """

    #: the SMAC maps and examples of SMACv2 env_ids (any <race>_<n>_vs_<m> works), for listings
    env_ids = (*SMAC_MAPS, *SMACV2_EXAMPLES)

    def __init__(self, env_id: str, **env_kwargs: Any) -> None:
        package, id_kwargs = parse_env_id(env_id)
        self.env_id = env_id
        self._class = import_env_class(package)
        self._kwargs = {"continuing_episode": True, **id_kwargs, **env_kwargs}
        self._env = self._build(self._kwargs)
        self._launched = False
        info = self._env.get_env_info()
        n_agents, n_actions = int(info["n_agents"]), int(info["n_actions"])
        self.agents = [f"agent_{i}" for i in range(n_agents)]
        self.n_enemies = int(getattr(self._env, "n_enemies", 0) or 0)
        obs_box = spaces.Box(-np.inf, np.inf, (int(info["obs_shape"]),), dtype=np.float32)
        self.observation_space = dict.fromkeys(self.agents, obs_box)
        self.action_space = {a: spaces.Discrete(n_actions) for a in self.agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (int(info["state_shape"]),),
                                      dtype=np.float32)
        self.max_episode_steps = int(info["episode_limit"])
        self._limit = self.max_episode_steps  # SMAC's own limit, whatever the config says
        self._t = 0
        self._last: dict[str, Any] = {}
        self._stats = {"dead_allies": 0.0, "dead_enemies": 0.0}

    def _build(self, kwargs: dict) -> Any:
        try:
            return self._class(**kwargs)
        except TypeError as error:
            raise ConfigError(f"env 'sc2', env_id {self.env_id!r}: bad env_kwargs: {error}"
                            ) from None

    # --- SMAC lists -> dicts ------------------------------------------------------------------
    def _observe(self) -> None:
        obs = self._env.get_obs()
        self._last = {
            "obs": {a: np.asarray(obs[i], dtype=np.float32) for i, a in enumerate(self.agents)},
            "state": np.asarray(self._env.get_state(), dtype=np.float32),
            "avail": {a: np.asarray(mask, dtype=bool)
                      for a, mask in zip(self.agents, self._env.get_avail_actions(),
                                         strict=True)},
        }

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None and not self._launched:
            self._env = self._build({**self._kwargs, "seed": seed})
        self._launched = True
        self._env.reset()
        self._t = 0
        self._stats = {"dead_allies": 0.0, "dead_enemies": 0.0}
        self._observe()
        return dict(self._last["obs"]), {}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        reward, game_over, info = self._env.step([int(actions[a]) for a in self.agents])
        self._t += 1
        protocol_error = bool(game_over) and not info
        if protocol_error:
            logger.warning("env 'sc2' %s: StarCraft II protocol error at step %d; SMAC "
                           "restarted the game, the episode ends here (truncated)",
                           self.env_id, self._t)
            won, timeout = False, False
            reward = 0.0
        else:
            won = bool(info.get("battle_won", False))
            self._stats = {"dead_allies": float(info.get("dead_allies", 0)),
                           "dead_enemies": float(info.get("dead_enemies", 0))}
            timeout = bool(info.get("episode_limit", False)) or (
                bool(game_over) and self._t >= self._limit and not won
                and self._stats["dead_allies"] < self.num_agents
                and (self.n_enemies == 0 or self._stats["dead_enemies"] < self.n_enemies))
            self._observe()  # after a protocol error the game is gone: keep the last obs
        terminated = bool(game_over) and not timeout and not protocol_error
        truncated = timeout or protocol_error
        step_info = {"battle_won": float(won), **self._stats, "timeout": float(timeout),
                     "protocol_error": float(protocol_error)}
        return (dict(self._last["obs"]), dict.fromkeys(self.agents, float(reward)),
                dict.fromkeys(self.agents, terminated), dict.fromkeys(self.agents, truncated),
                step_info)

    def state(self) -> np.ndarray:
        return self._last["state"]

    def avail_actions(self) -> dict[str, np.ndarray]:
        return dict(self._last["avail"])

    def close(self) -> None:
        self._env.close()

    check_env_id = staticmethod(check_sc2_env_id)  # read by make.check_env_id
