"""The dict-API contract, enforced where xwq calls a user's env.

Every call :class:`ArrayEnv`, :class:`PettingZooEnv` and :func:`xwq.check_env` make into an
env's ``reset``, ``step``, spaces and masks goes through here, so each convention is decided
once:

- ``reset`` must return ``(obs, info)`` and ``step`` five values ``(obs, rewards, terminated,
  truncated, info)``; the old gym forms (plain ``obs``; ``(obs, rewards, dones, infos)``) are
  refused with the fix, since a 4-tuple cannot tell a time limit from a true end;
- a ``reset`` without a ``seed`` parameter is adapted: seeded through ``env.seed(seed)`` when the
  env has one, else played unseeded with a warning (runs are then not reproducible);
- ``observation_space``/``action_space`` may be dicts or PettingZoo-style methods of the agent;
- ``avail_actions()`` returning None, or no entry for an agent, means every action available;
- a reward may be any single number (float, numpy scalar, array of one value);
- ``num_agents`` assigned in ``__init__`` (XuanCe style) must equal ``len(agents)``.

Adaptations are logged once per env class (logger ``xwq.environment``) and remembered per env
instance, so :func:`xwq.check_env` can list the ones it made (:func:`adaptations`).
"""

from __future__ import annotations

import inspect
import logging
import weakref
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.interfaces import MultiAgentEnv
from xwq.errors import EnvMismatchError

logger = logging.getLogger("xwq.environment")

_logged: set[tuple[type, str]] = set()  # (env class, message): each logged once per process
_notes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # env -> its adaptations


def name_of(env: Any) -> str:
    """How messages name an env: its PettingZoo ``metadata["name"]`` (wrappers hide the class),
    else its class name."""
    metadata = getattr(env, "metadata", None)
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        return metadata["name"]
    return type(env).__name__


def warn_once(env: Any, message: str) -> None:
    """Log ``message`` about ``env`` once per env class; remember it for :func:`adaptations`."""
    key = (type(env), message)
    if key not in _logged:
        _logged.add(key)
        logger.warning("env %s: %s", name_of(env), message)
    try:
        notes = _notes.setdefault(env, [])
    except TypeError:  # an object that cannot be weakly referenced: logged, not remembered
        return
    if message not in notes:
        notes.append(message)


def adaptations(env: Any) -> list[str]:
    """The adaptations made so far for ``env`` (what xwq assumed about it), in order."""
    try:
        return list(_notes.get(env, []))
    except TypeError:
        return []


# --- agents and spaces ----------------------------------------------------------------------
def agent_list(env: Any) -> list[str]:
    """``env.agents`` as a list, or an EnvMismatchError saying how to declare them; checks a
    ``num_agents`` the env assigned itself against it."""
    agents = getattr(env, "agents", None)
    if agents is None or isinstance(agents, (str, bytes)) or not hasattr(agents, "__iter__"):
        raise EnvMismatchError(
            f"env {name_of(env)}: env.agents must be a list of agent names, got "
            f"{type(agents).__name__}; set self.agents = ['agent_0', ...] in __init__")
    agents = list(agents)
    if not agents:
        raise EnvMismatchError(
            f"the env has no agents: env {name_of(env)}'s env.agents is empty; list the agent "
            "names in __init__ (before reset: xwq reads them once to size its arrays)")
    declared = getattr(env, "declared_num_agents", None)
    if declared is None and not isinstance(inspect.getattr_static(env, "num_agents", None),
                                           property):
        declared = getattr(env, "num_agents", None)  # a plain attribute shadowing the property
    if declared is not None and declared != len(agents):
        raise EnvMismatchError(
            f"env {name_of(env)}: num_agents = {declared} but env.agents lists {len(agents)} "
            f"agents {agents}; xwq counts the agents in env.agents: fix the list or drop the "
            "num_agents assignment")
    return agents


def agent_spaces(env: Any, table: str, agents: list[str]) -> dict[str, spaces.Space]:
    """``env.observation_space`` or ``env.action_space`` as a dict agent -> space, whether the
    env holds a dict or a PettingZoo-style method ``observation_space(agent)``."""
    value = getattr(env, table, None)
    if isinstance(value, dict):
        missing = [a for a in agents if a not in value]
        if missing:
            raise EnvMismatchError(
                f"env {name_of(env)}: env.{table} has no entry for agents {missing}; give "
                "every agent in env.agents a gymnasium space")
        return {a: value[a] for a in agents}
    if callable(value):
        return {a: value(a) for a in agents}
    raise EnvMismatchError(
        f"env {name_of(env)}: env.{table} must be a dict agent -> gymnasium space (or a method "
        f"of the agent, PettingZoo style), got {type(value).__name__}")


def discrete_actions(env: Any, agent: str, space: Any) -> int:
    """The number of actions of ``agent``'s action space, which must be Discrete."""
    if not isinstance(space, spaces.Discrete):
        raise EnvMismatchError(
            f"env {name_of(env)}: agent '{agent}': action space is {space}; value-decomposition "
            "methods need gymnasium Discrete actions: give the agent a Discrete space (a fixed "
            "set of actions; for PettingZoo envs that offer it, continuous_actions=False)")
    return int(space.n)


# --- reset and step -------------------------------------------------------------------------
def reset_takes_seed(env: Any) -> bool:
    """Whether ``env.reset`` accepts ``seed=`` (a ``seed`` parameter or ``**kwargs``)."""
    try:
        parameters = inspect.signature(env.reset).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the current API
        return True
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in parameters)


def call_reset(env: Any, seed: int | None = None) -> tuple[Any, dict]:
    """``env.reset(seed=seed)``, adapted to a ``reset()`` without a seed parameter; returns
    ``(obs, info)`` with ``info`` a dict, or an EnvMismatchError for an old-style return."""
    if reset_takes_seed(env):
        result = env.reset(seed=seed)
    else:
        seeder = getattr(env, "seed", None)
        if callable(seeder):
            warn_once(env, "reset() takes no seed; xwq seeds its episodes through env.seed(seed)")
            if seed is not None:
                seeder(seed)
        else:
            warn_once(env, "reset() takes no seed and the env has no seed() method: its episodes "
                           "cannot be seeded, so runs are not reproducible; add a seed=None "
                           "parameter to reset")
        result = env.reset()
    if isinstance(result, dict):
        raise EnvMismatchError(
            f"env {name_of(env)}: reset() returned only the observations (old gym style); "
            "it must return (obs, info): end it with `return obs, {}`")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else (
            type(result).__name__)
        raise EnvMismatchError(
            f"env {name_of(env)}: reset() returned {got}; it must return (obs, info): the "
            "observation dict and an info dict")
    obs, info = result
    if info is None:
        info = {}
    if not isinstance(info, dict):
        raise EnvMismatchError(
            f"env {name_of(env)}: reset() returned (obs, {type(info).__name__}); the second "
            "value must be the info dict (a global state belongs in state(), masks in "
            "avail_actions())")
    return obs, info


def check_step_result(env: Any, result: Any) -> tuple[Any, Any, Any, Any, Any]:
    """The five values of ``env.step``, or an EnvMismatchError (the old gym 4-tuple named)."""
    if isinstance(result, (tuple, list)) and len(result) == 5:
        return tuple(result)
    if isinstance(result, (tuple, list)) and len(result) == 4:
        raise EnvMismatchError(
            f"env {name_of(env)}: step() returned 4 values (obs, rewards, dones, infos: the old "
            "gym API); return 5: (obs, rewards, terminated, truncated, info), with terminated "
            "for a true end and truncated for a time limit")
    got = f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__
    raise EnvMismatchError(
        f"env {name_of(env)}: step() returned {got}; it must return 5: (obs, rewards, "
        "terminated, truncated, info), the first four dicts keyed by agent")


def step_info(env: Any, info: Any) -> dict:
    """``info`` as a dict: None is empty; anything else that is not a dict is ignored, with a
    warning that its statistics are lost."""
    if isinstance(info, dict):
        return info
    if info is not None:
        warn_once(env, f"step() returned info as {type(info).__name__}, not a dict; xwq reads "
                       "episode statistics only from a dict and ignores it")
    return {}


def reward_value(env: Any, agent: str, value: Any, where: str) -> float:
    """One agent's reward as a float: a number, numpy scalar or array holding one value."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.size != 1:
        what = type(value).__name__ if array is None else f"shape {array.shape}"
        raise EnvMismatchError(
            f"env {name_of(env)}: agent '{agent}': {where} reward is {what}; a reward must be "
            "one number")
    return float(array.reshape(()))


def action_masks(env: Any) -> dict[str, Any]:
    """``env.avail_actions()`` as a dict; None (no masks) is empty, so every action of every
    agent is available, as it is for an agent missing from the dict."""
    masks = env.avail_actions()
    if masks is None:
        return {}
    if not isinstance(masks, dict):
        raise EnvMismatchError(
            f"env {name_of(env)}: avail_actions() returned {type(masks).__name__}; it must "
            "return a dict agent -> bool mask over its actions (or None: all available)")
    return masks


def implements_state(env: Any) -> bool:
    """Whether the env's class has its own ``state()`` (not MultiAgentEnv's default)."""
    own = getattr(type(env), "state", None)
    return own is not None and own is not MultiAgentEnv.state
