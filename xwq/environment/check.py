"""``check_env``: step a user's environment and explain every mismatch it finds.

It takes a dict-API env (a :class:`MultiAgentEnv` or a PettingZoo ``ParallelEnv``), checks its
spaces against what ``reset``/``step``/``state``/``avail_actions`` return, then steps it as
training will (through :class:`ArrayEnv`), and raises one :class:`EnvMismatchError` listing
every problem; on success it returns the env's :class:`EnvSpec` as a dict, with where the global
state comes from, what xwq assumed about the env (:mod:`.adapters.contract`) and the episode
statistics its ``info`` reported (the names ``eval_metric`` may take).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.adapters import contract
from xwq.environment.adapters.array_env import ArrayEnv, as_multi_agent_env, episode_statistics
from xwq.errors import EnvMismatchError

logger = logging.getLogger(__name__)

#: observed values beyond this magnitude in unbounded features get a warning: nothing can scale
#: them (input_normalization scales from the spaces' bounds; its ``auto`` leaves [-10, 10] as is)
LARGE_VALUE = 10.0


def _scale_advice(obs_spaces: dict, obs: dict, live: list[str],
                  advice: dict[str, str]) -> None:
    """Remember, once per agent, observations of large magnitude in features whose space is
    unbounded, which xwq cannot scale before its networks."""
    for agent in live:
        if agent in advice or agent not in obs:
            continue
        space = obs_spaces[agent]
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


def _fail(problems: list[str]) -> EnvMismatchError:
    """One problem on one line; several as a list, one a line."""
    if len(problems) == 1:
        return EnvMismatchError(f"check_env found a problem: {problems[0]}")
    return EnvMismatchError("check_env found problems:\n- " + "\n- ".join(problems))


def _check_spaces(obs_spaces: dict, action_spaces: dict, problems: list[str]) -> None:
    for agent, space in action_spaces.items():
        if not isinstance(space, spaces.Discrete):
            problems.append(f"agent '{agent}': action space {space} is not Discrete; "
                            "value-decomposition methods need Discrete actions")
    for agent, space in obs_spaces.items():
        if not isinstance(space, spaces.Box):
            problems.append(f"agent '{agent}': observation space {space} is not a Box")


def _check_obs(obs_spaces: dict, obs: Any, where: str, problems: list[str],
               live: list[str]) -> None:
    if not isinstance(obs, dict):
        problems.append(f"{where} must return observations as a dict keyed by agent, "
                        f"got {type(obs).__name__}")
        return
    for agent in live:
        if agent not in obs:
            problems.append(f"{where}: no observation for agent '{agent}'")
            continue
        space = obs_spaces[agent]
        value = np.asarray(obs[agent])
        if value.shape != tuple(space.shape):
            same = " (same number of values: reshape it or fix the space)" if (
                value.size == int(np.prod(space.shape))) else ""
            problems.append(f"{where}: agent '{agent}' observation has shape {value.shape}, "
                            f"its observation space says {tuple(space.shape)}{same}")
        elif not np.issubdtype(value.dtype, np.number):
            problems.append(f"{where}: agent '{agent}' observation has dtype {value.dtype}, "
                            "expected numbers")
        elif not np.all(np.isfinite(value)):
            problems.append(f"{where}: agent '{agent}' observation has NaN or inf values")


def _check_masks(env: Any, action_spaces: dict, where: str, problems: list[str],
                 live: list[str]) -> dict[str, np.ndarray]:
    """The live agents' masks (all actions where the env gives none), problems listed."""
    masks = contract.action_masks(env)
    out = {}
    for agent in live:
        n = action_spaces[agent].n
        if masks.get(agent) is None:
            out[agent] = np.ones(n, dtype=bool)
            continue
        mask = np.asarray(masks[agent])
        out[agent] = mask.astype(bool).reshape(-1)
        if mask.shape != (n,):
            problems.append(f"{where}: agent '{agent}' action mask has shape {mask.shape}, "
                            f"expected ({n},) for {action_spaces[agent]}")
        elif not mask.astype(bool).any():
            problems.append(f"{where}: agent '{agent}' has no available action; "
                            "give it at least one (e.g. a no-op)")
    return out


def _check_state(env: Any, where: str, problems: list[str]) -> None:
    if env.state_space is None and not contract.implements_state(env):
        return  # xwq concatenates the observations
    if not contract.implements_state(env):
        problems.append("env.state_space is set but the env has no state() method: implement "
                        "state(), or drop state_space to have xwq concatenate the observations")
        return
    state = np.asarray(env.state())
    if env.state_space is not None and state.size != int(np.prod(env.state_space.shape)):
        problems.append(f"{where}: state() has {state.size} values, state_space "
                        f"{env.state_space.shape} says {int(np.prod(env.state_space.shape))}")
    elif not np.issubdtype(state.dtype, np.number) or not np.all(np.isfinite(state)):
        problems.append(f"{where}: state() must return finite numbers, got {state.dtype} "
                        "with NaN, inf or non-numbers")


def _roll_dict_api(env: Any, agents: list[str], obs_spaces: dict, action_spaces: dict,
                   steps: int, rng: np.random.Generator, problems: list[str],
                   advice: dict[str, str]) -> tuple[int, set[str]]:
    """Step the env's own dict API with random available actions; (episodes, statistics).
    Scale advice (:func:`_scale_advice`) is collected into ``advice``."""
    live, episodes, t = list(agents), 0, 0
    statistics: set[str] = set()
    for step in range(steps):
        where = f"step() #{step}"
        masks = _check_masks(env, action_spaces, f"before {where}", problems, live)
        if problems:
            break
        actions = {a: int(rng.choice(np.flatnonzero(masks[a]))) for a in live}
        obs, rewards, terminated, truncated, info = contract.check_step_result(
            env, env.step(actions))
        statistics |= episode_statistics(contract.step_info(env, info), agents).keys()
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
            value = contract.reward_value(env, agent, rewards[agent], where)
            if not np.isfinite(value):
                problems.append(f"{where}: agent '{agent}' reward is {value}")
        t += 1
        live = [a for a in live if not (terminated[a] or truncated[a])]
        _check_obs(obs_spaces, obs, where, problems, live)
        if not problems:
            _scale_advice(obs_spaces, obs, live, advice)
        if live:
            _check_state(env, where, problems)
        if problems:
            break
        if not live or t >= env.max_episode_steps:
            episodes += 1
            live, t = list(agents), 0
            contract.call_reset(env)
    return episodes, statistics


def _roll_arrays(env: Any, steps: int, rng: np.random.Generator) -> ArrayEnv:
    """Step the env as training does (through ArrayEnv); its errors are training's errors."""
    array_env = ArrayEnv(env)
    _, _, avail = array_env.reset()
    for _ in range(steps):
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in avail])
        *_, avail, _, term, trunc = array_env.step(actions)
        if term or trunc:
            _, _, avail = array_env.reset()
    return array_env


def _roll(env: Any, agents: list[str], obs_spaces: dict, action_spaces: dict, steps: int,
          seed: int, problems: list[str], advice: dict[str, str]
          ) -> tuple[ArrayEnv, int, set[str]] | None:
    """Reset, roll the dict API, then the arrays; None as soon as a problem is listed."""
    rng = np.random.default_rng(seed)
    obs, _ = contract.call_reset(env, seed)
    _check_obs(obs_spaces, obs, "reset()", problems, agents)
    if not problems:
        _scale_advice(obs_spaces, obs, agents, advice)
    _check_masks(env, action_spaces, "after reset()", problems, agents)
    _check_state(env, "after reset()", problems)
    if problems:
        return None
    episodes, statistics = _roll_dict_api(env, agents, obs_spaces, action_spaces, steps, rng,
                                          problems, advice)
    if problems:
        return None
    array_env = _roll_arrays(env, min(steps, 2 * env.max_episode_steps), rng)
    return array_env, episodes, statistics


def check_env(env: Any, steps: int = 200, seed: int = 0,
              max_episode_steps: int | None = None) -> dict:
    """Roll ``env`` (a MultiAgentEnv or PettingZoo ParallelEnv) with random available actions.

    Checks the declared spaces against what ``reset``/``step``/``state``/``avail_actions``
    return, for up to ``steps`` steps (several episodes if they are short), then steps it as
    arrays, as training will. ``max_episode_steps`` is the time limit xwq will impose (config
    key of that name), for an env that declares none.

    Returns:
        A summary: the :class:`EnvSpec` as a dict plus the episodes and steps run,
        ``state_source`` (``"state()"`` or ``"concatenated observations"``), ``adaptations``
        (what xwq assumed about the env, e.g. a reset without seed; also logged) and
        ``statistics``, the names of the numeric episode statistics found in ``info``, and
        ``warnings`` (also logged): observations of large magnitude where the space declares
        no bounds, which ``input_normalization`` cannot scale.

    Raises:
        EnvMismatchError: listing every problem found, each naming the agent and what to fix.
    """
    env = as_multi_agent_env(env, max_episode_steps)
    problems: list[str] = []
    advice: dict[str, str] = {}
    try:
        agents = contract.agent_list(env)
        obs_spaces = contract.agent_spaces(env, "observation_space", agents)
        action_spaces = contract.agent_spaces(env, "action_space", agents)
    except EnvMismatchError as error:
        raise _fail([str(error)]) from None
    _check_spaces(obs_spaces, action_spaces, problems)
    if env.max_episode_steps is None:
        problems.append("no time limit: set env.max_episode_steps (or config "
                        "'max_episode_steps')")
    if problems:
        raise _fail(problems)
    try:  # the contract's checks raise one-line errors: they join the list
        rolled = _roll(env, agents, obs_spaces, action_spaces, steps, seed, problems, advice)
    except EnvMismatchError as error:
        problems.append(str(error))
    if problems:
        raise _fail(problems)
    array_env, episodes, statistics = rolled
    for message in advice.values():
        logger.warning("check_env: %s", message)
    summary = array_env.spec.to_dict()
    summary.update(episodes=episodes, steps=steps, statistics=sorted(statistics),
                   state_source=array_env.state_source,
                   adaptations=contract.adaptations(env), warnings=list(advice.values()))
    return summary

