"""``check_env``: step a user's environment and explain every mismatch it finds.

It takes a dict-API env (a :class:`MultiAgentEnv` or a PettingZoo ``ParallelEnv``), checks its
spaces against what ``reset``/``step``/``state``/``avail_actions`` return, and raises one
:class:`EnvMismatchError` listing every problem; on success it returns the env's
:class:`EnvSpec` as a dict, with the episode statistics its ``info`` reported (the names
``eval_metric`` may take).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.adapters.array_env import ArrayEnv, as_multi_agent_env, episode_statistics
from xwq.errors import EnvMismatchError

logger = logging.getLogger(__name__)

#: observed values beyond this magnitude in unbounded features get a warning: nothing can scale
#: them (input_normalization scales from the spaces' bounds; its ``auto`` leaves [-10, 10] as is)
LARGE_VALUE = 10.0


def _scale_advice(env: Any, obs: dict, live: list[str], advice: dict[str, str]) -> None:
    """Remember, once per agent, observations of large magnitude in features whose space is
    unbounded, which xwq cannot scale before its networks."""
    for agent in live:
        if agent in advice or agent not in obs:
            continue
        space = env.observation_space[agent]
        value = np.asarray(obs[agent], dtype=np.float64).reshape(-1)
        low = np.broadcast_to(space.low, space.shape).reshape(-1)
        high = np.broadcast_to(space.high, space.shape).reshape(-1)
        unbounded = ~(np.isfinite(low) & np.isfinite(high))
        if value.size == low.size and unbounded.any():
            largest = float(np.abs(value[unbounded]).max())
            if largest > LARGE_VALUE:
                advice[agent] = (
                    f"agent '{agent}': observations reach |x| = {largest:g} in features whose "
                    "observation space is unbounded, so input_normalization cannot scale them "
                    "before the networks; declare their bounds (Box(low, high))")


def _check_spaces(env: Any, problems: list[str]) -> None:
    agents = list(getattr(env, "agents", []) or [])
    if not agents:
        problems.append("env.agents is empty or missing: list the agent names in __init__")
        return
    for table in ("observation_space", "action_space"):
        spaces_of = getattr(env, table, None)
        if not isinstance(spaces_of, dict):
            problems.append(f"env.{table} must be a dict agent -> gymnasium space, "
                            f"got {type(spaces_of).__name__}")
            continue
        missing = [a for a in agents if a not in spaces_of]
        if missing:
            problems.append(f"env.{table} has no entry for agents {missing}")
    for agent in agents:
        action_space = getattr(env, "action_space", {}).get(agent)
        if action_space is not None and not isinstance(action_space, spaces.Discrete):
            problems.append(f"agent '{agent}': action space {action_space} is not Discrete")
        obs_space = getattr(env, "observation_space", {}).get(agent)
        if obs_space is not None and not isinstance(obs_space, spaces.Box):
            problems.append(f"agent '{agent}': observation space {obs_space} is not a Box")


def _check_obs(env: Any, obs: Any, where: str, problems: list[str], live: list[str]) -> None:
    if not isinstance(obs, dict):
        problems.append(f"{where} must return observations as a dict keyed by agent, "
                        f"got {type(obs).__name__}")
        return
    for agent in live:
        if agent not in obs:
            problems.append(f"{where}: no observation for agent '{agent}'")
            continue
        space = env.observation_space[agent]
        value = np.asarray(obs[agent])
        if value.shape != tuple(space.shape):
            problems.append(f"{where}: agent '{agent}' observation has shape {value.shape}, "
                            f"its observation space says {tuple(space.shape)}")
        elif not np.issubdtype(value.dtype, np.number):
            problems.append(f"{where}: agent '{agent}' observation has dtype {value.dtype}, "
                            "expected numbers")
        elif not np.all(np.isfinite(value)):
            problems.append(f"{where}: agent '{agent}' observation has NaN or inf values")


def _check_masks(env: Any, where: str, problems: list[str], live: list[str]) -> None:
    masks = env.avail_actions()
    for agent in live:
        if agent not in masks:
            problems.append(f"{where}: avail_actions() has no mask for agent '{agent}'")
            continue
        mask = np.asarray(masks[agent])
        n = env.action_space[agent].n
        if mask.shape != (n,):
            problems.append(f"{where}: agent '{agent}' action mask has shape {mask.shape}, "
                            f"expected ({n},) for {env.action_space[agent]}")
        elif not mask.astype(bool).any():
            problems.append(f"{where}: agent '{agent}' has no available action; "
                            "give it at least one (e.g. a no-op)")


def check_env(env: Any, steps: int = 200, seed: int = 0,
              max_episode_steps: int | None = None) -> dict:
    """Roll ``env`` (a MultiAgentEnv or PettingZoo ParallelEnv) with random available actions.

    Checks the declared spaces against what ``reset``/``step``/``state``/``avail_actions``
    return, for up to ``steps`` steps (several episodes if they are short).
    ``max_episode_steps`` is the time limit xwq will impose (config key of that name), for an
    env that declares none.

    Returns:
        A summary: the :class:`EnvSpec` as a dict plus the episodes and steps run,
        ``statistics``, the names of the numeric episode statistics found in ``info``, and
        ``warnings`` (also logged): observations of large magnitude where the space declares
        no bounds, which ``input_normalization`` cannot scale.

    Raises:
        EnvMismatchError: listing every problem found, each naming the agent and what to fix.
    """
    env = as_multi_agent_env(env, max_episode_steps)
    problems: list[str] = []
    _check_spaces(env, problems)
    if problems:
        raise EnvMismatchError("check_env found problems:\n- " + "\n- ".join(problems))
    agents = list(env.agents)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    _check_obs(env, obs, "reset()", problems, agents)
    advice: dict[str, str] = {}
    if not problems:
        _scale_advice(env, obs, agents, advice)
    _check_masks(env, "after reset()", problems, agents)
    if env.state_space is not None:
        state = np.asarray(env.state())
        if state.size != int(np.prod(env.state_space.shape)):
            problems.append(f"state() has {state.size} values, state_space "
                            f"{env.state_space.shape} says {int(np.prod(env.state_space.shape))}")
    if env.max_episode_steps is None:
        problems.append("no time limit: set env.max_episode_steps (or config "
                        "'max_episode_steps')")
    if problems:
        raise EnvMismatchError("check_env found problems:\n- " + "\n- ".join(problems))

    live, episodes, t = list(agents), 0, 0
    statistics: set[str] = set()
    for step in range(steps):
        masks = env.avail_actions()
        actions = {a: int(rng.choice(np.flatnonzero(np.asarray(masks[a], dtype=bool))))
                   for a in live}
        result = env.step(actions)
        where = f"step() #{step}"
        if not (isinstance(result, tuple) and len(result) == 5):
            problems.append(f"{where} must return (obs, rewards, terminated, truncated, info)")
            break
        obs, rewards, terminated, truncated, info = result
        statistics |= episode_statistics(info, agents).keys()
        for name, table in (("rewards", rewards), ("terminated", terminated),
                            ("truncated", truncated)):
            if not isinstance(table, dict):
                problems.append(f"{where}: {name} must be a dict keyed by agent, "
                                f"got {type(table).__name__}")
                continue
            missing = [a for a in live if a not in table]
            if missing:
                problems.append(f"{where}: {name} is missing agents {missing}")
        if problems:
            break
        for agent in live:
            if not np.isfinite(float(rewards[agent])):
                problems.append(f"{where}: agent '{agent}' reward is {rewards[agent]}")
        t += 1
        live = [a for a in live if not (terminated[a] or truncated[a])]
        _check_obs(env, obs, where, problems, live)
        if not problems:
            _scale_advice(env, obs, live, advice)
        if live:
            _check_masks(env, where, problems, live)
        if problems:
            break
        if not live or t >= env.max_episode_steps:
            episodes += 1
            live, t = list(agents), 0
            env.reset()
    if problems:
        raise EnvMismatchError("check_env found problems:\n- " + "\n- ".join(problems))
    for message in advice.values():
        logger.warning("check_env: %s", message)
    summary = ArrayEnv(env).spec.to_dict()
    summary.update(episodes=episodes, steps=steps, statistics=sorted(statistics),
                   warnings=list(advice.values()))
    return summary
