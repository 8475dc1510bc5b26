"""One dict-API env seen as arrays: padding, masks, team reward and the time limit.

:func:`as_multi_agent_env` turns what an env factory returned (a :class:`MultiAgentEnv` or a
PettingZoo ``ParallelEnv``) into a :class:`MultiAgentEnv`; :class:`ArrayEnv` is the only place
where its agent-keyed dicts become arrays (obs ``[n_agents, obs_dim]``, state ``[state_dim]``,
avail ``[n_agents, n_actions]``), and the vectorisers (:mod:`xwq.environment.vector`) stack K
of them.

Heterogeneous agents are padded to the largest observation (zeros) and the largest action set
(extra actions masked unavailable). An agent that has left the episode sees zeros and may only
take action 0, which is never sent to the env. The team reward is the sum of the rewards of the
agents that acted, or (``team_reward: mean``) that sum over the number of all agents.

What the env returns is checked, and old conventions adapted or refused, in :mod:`.contract`.

The numbers in each step's ``info`` become episode statistics (:func:`episode_statistics`; the
convention is in :mod:`xwq.environment.interfaces`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.adapters import contract
from xwq.environment.adapters.pettingzoo import PettingZooEnv
from xwq.environment.interfaces import EnvSpec, MultiAgentEnv, storage_dtype
from xwq.errors import EnvMismatchError

logger = logging.getLogger(__name__)


def as_multi_agent_env(env: Any, max_episode_steps: int | None = None) -> MultiAgentEnv:
    """Return ``env`` as a MultiAgentEnv, wrapping a PettingZoo ParallelEnv if needed."""
    if isinstance(env, MultiAgentEnv):
        if max_episode_steps is not None:
            env.max_episode_steps = max_episode_steps
        return env
    if hasattr(env, "possible_agents") and callable(getattr(env, "agent_iter", None)):
        raise EnvMismatchError(
            f"an env factory returned {type(env).__name__}, a PettingZoo AEC env (agents take "
            "turns); return its parallel version: the module's parallel_env(), or "
            "pettingzoo.utils.conversions.aec_to_parallel(env)")
    if hasattr(env, "possible_agents") and hasattr(env, "observation_space"):
        return PettingZooEnv(env, max_episode_steps=max_episode_steps)
    raise EnvMismatchError(
        f"an env factory returned {type(env).__name__}; it must return an xwq MultiAgentEnv "
        "subclass or a PettingZoo ParallelEnv"
    )


#: per-episode quantities xwq computes itself; an env's info values of these names are not read
RESERVED_STATISTICS = frozenset({"return", "length"})


def _number(value: Any) -> float | None:
    """``value`` as a float if it is one number (bool, int, float, numpy scalar or 0-d array)."""
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return float(value)
    return None


def episode_statistics(info: Any, agents: Collection[str]) -> dict[str, float]:
    """The numeric statistics in one step's ``info``: top-level numbers as they are; numbers
    inside per-agent dicts (PettingZoo's ``{agent: {key: number}}``) averaged over the agents
    that report them (a top-level value of the same name wins). Everything else — action masks,
    arrays, strings, the reserved names ``return`` and ``length`` — is ignored.

    >>> episode_statistics({"battle_won": True, "a": {"kills": 2, "action_mask": [1, 0]},
    ...                     "b": {"kills": 4}}, ["a", "b"])
    {'battle_won': 1.0, 'kills': 3.0}
    """
    if not isinstance(info, dict):
        return {}
    statistics: dict[str, float] = {}
    per_agent: dict[str, list[float]] = {}
    for key, value in info.items():
        if key in agents and isinstance(value, dict):
            for name, entry in value.items():
                number = _number(entry)
                if number is not None:
                    per_agent.setdefault(str(name), []).append(number)
        else:
            number = _number(value)
            if number is not None:
                statistics[str(key)] = number
    for name, values in per_agent.items():
        statistics.setdefault(name, float(np.mean(values)))
    for name in RESERVED_STATISTICS & statistics.keys():
        del statistics[name]
    return statistics


def _flat_size(space: spaces.Space, agent: str, what: str) -> int:
    if not isinstance(space, spaces.Box):
        raise EnvMismatchError(
            f"agent '{agent}': {what} is {space}; xwq needs a gymnasium Box (any shape)")
    return int(np.prod(space.shape))


def _as_storage(value: np.ndarray, dtype: np.dtype | str, what: str, check: bool) -> np.ndarray:
    """``value`` flattened, in the storage dtype. With ``check`` (the first observation of
    each episode: cheap enough), fractional values for an integer dtype (a space that says
    uint8 but an env that returns floats) are an EnvMismatchError."""
    dtype = np.dtype(dtype)
    if check and dtype.kind in "biu" and value.dtype.kind == "f" and value.size \
            and not np.array_equal(value, np.round(value)):
        raise EnvMismatchError(
            f"{what} has fractional values but its space's dtype is {dtype}; return "
            f"{dtype} values, or declare the space with dtype float32")
    return value.astype(dtype, copy=False).reshape(-1)


#: where the global state comes from (``ArrayEnv.state_source``)
STATE_FROM_ENV = "state()"
STATE_FROM_OBSERVATIONS = "concatenated observations"
STATE_UNUSED = "none (state_source: observations)"


def _probe_state(env: Any) -> np.ndarray | None:
    """``env.state()`` as an array, or None where it raises NotImplementedError (a base class's
    placeholder, a common habit): the env then has no state of its own."""
    try:
        return np.asarray(env.state())
    except NotImplementedError:
        logger.info("env %s: state() raises NotImplementedError; the state is the concatenated "
                    "observations", contract.name_of(env))
        return None


class ArrayEnv:
    """A single MultiAgentEnv exchanging arrays (no autoreset; see the vec envs for that).

    ``reset(seed) -> (obs [n, obs_dim], state [state_dim], avail [n, n_actions])``;
    ``step(actions [n]) -> (obs, state, avail, reward, terminated, truncated)``.

    The env's returns are checked (and old conventions adapted or refused) by
    :mod:`.contract`; observations must have their space's shape, and a NaN or inf in an
    observation, reward or state is an error naming the agent and the step.

    Team reward: ``"sum"`` adds the rewards of the agents that acted in the step; ``"mean"``
    divides that sum by the number of *all* agents, so an agent that has left counts as 0 and
    the scale does not jump as agents leave.

    Attributes:
        statistics: the numeric episode statistics of the last step's ``info``
            (:func:`episode_statistics`); empty after a reset.
        state_source: ``"state()"``, ``"concatenated observations"`` (an env with neither
            ``state()`` nor ``state_space``), or none (``use_state=False``).
    """

    def __init__(self, env: MultiAgentEnv, team_reward: str = "mean",
                 use_state: bool = True) -> None:
        self.env = env
        self.team_reward = team_reward
        #: False: ``env.state()`` is never called and the state is empty (``state_dim`` 0);
        #: for config ``state_source: observations``, where the agents build their own
        self.use_state = use_state
        agents = contract.agent_list(env)
        self._obs_spaces = contract.agent_spaces(env, "observation_space", agents)
        self._obs_sizes = [_flat_size(self._obs_spaces[a], a, "observation space")
                           for a in agents]
        action_spaces = contract.agent_spaces(env, "action_space", agents)
        self._n_actions = [contract.discrete_actions(env, a, action_spaces[a]) for a in agents]
        # Discrete(n, start=s): xwq's action k is the env's k + s
        self._action_starts = [int(action_spaces[a].start) for a in agents]
        if env.max_episode_steps is None:
            raise EnvMismatchError(
                f"env {contract.name_of(env)} has no time limit: set max_episode_steps on it, "
                "or the config key 'max_episode_steps'")
        obs_dim = max(self._obs_sizes)
        n_actions = max(self._n_actions)
        obs_spaces = [self._obs_spaces[a] for a in agents]
        obs_dtype = storage_dtype(space.dtype for space in obs_spaces)
        # per agent, its space's bounds; padded features are unbounded (left as they are)
        obs_low = np.full((len(agents), obs_dim), -np.inf)
        obs_high = np.full((len(agents), obs_dim), np.inf)
        for i, space in enumerate(obs_spaces):
            obs_low[i, : self._obs_sizes[i]] = np.broadcast_to(space.low, space.shape).ravel()
            obs_high[i, : self._obs_sizes[i]] = np.broadcast_to(space.high, space.shape).ravel()
        self.state_source = STATE_FROM_ENV
        self._concatenate_obs = False  # the env has no state(): ArrayEnv builds it
        state_low = state_high = state_dim = None
        if not use_state:
            self.state_source = STATE_UNUSED
            state_dim, state_dtype = 0, "float32"
        elif env.state_space is not None:
            if not contract.implements_state(env):
                raise EnvMismatchError(
                    f"env {contract.name_of(env)} sets state_space but has no state() method: "
                    "implement state(), or drop state_space to have xwq concatenate the "
                    "observations")
            state_dim = _flat_size(env.state_space, "state", "state space")
            state_dtype = storage_dtype([env.state_space.dtype])
            state_low = np.broadcast_to(env.state_space.low, env.state_space.shape).ravel()
            state_high = np.broadcast_to(env.state_space.high, env.state_space.shape).ravel()
        elif contract.implements_state(env):
            # probe the state size once; reset(seed) later restarts the env's randomness
            contract.call_reset(env)
            probe = _probe_state(env)
            if probe is not None:
                state_dim, state_dtype = int(probe.size), storage_dtype([probe.dtype])
                if getattr(env, "state_from_observations", False):  # PettingZoo, none of its own
                    self.state_source = STATE_FROM_OBSERVATIONS
        if state_dim is None:  # no state() of its own, or one that raises NotImplementedError
            self.state_source = STATE_FROM_OBSERVATIONS
            self._concatenate_obs = True
            state_dim, state_dtype = sum(self._obs_sizes), obs_dtype
            state_low = np.concatenate([obs_low[i, :size]
                                        for i, size in enumerate(self._obs_sizes)])
            state_high = np.concatenate([obs_high[i, :size]
                                         for i, size in enumerate(self._obs_sizes)])
        self.spec = EnvSpec(tuple(agents), obs_dim, state_dim, n_actions,
                            int(env.max_episode_steps), obs_dtype=obs_dtype,
                            state_dtype=state_dtype, obs_low=obs_low, obs_high=obs_high,
                            state_low=state_low, state_high=state_high)
        self._t = 0
        self._done_agents: set[str] = set()
        self.statistics: dict[str, float] = {}

    # --- dict -> arrays -------------------------------------------------------------------
    def _where(self) -> str:
        return "reset()" if self._t == 0 else f"step() at episode step {self._t}"

    def _obs_array(self, obs: Any) -> np.ndarray:
        if not isinstance(obs, dict):
            raise EnvMismatchError(
                f"env {contract.name_of(self.env)}: {self._where()} returned observations as "
                f"{type(obs).__name__}; return a dict keyed by agent name")
        out = np.zeros((self.spec.n_agents, self.spec.obs_dim), dtype=self.spec.obs_dtype)
        for i, agent in enumerate(self.spec.agents):
            if agent in self._done_agents:
                continue
            if agent not in obs:
                raise EnvMismatchError(
                    f"agent '{agent}' is still in the episode but got no observation at step "
                    f"{self._t}; return one for every agent that has not terminated")
            try:
                if obs[agent] is None:  # numpy would make it a NaN
                    raise TypeError
                value = np.asarray(obs[agent])
                if value.dtype.kind not in "biuf":
                    value = value.astype(np.float32)
            except (TypeError, ValueError):
                raise EnvMismatchError(
                    f"agent '{agent}': observation at {self._where()} is not an array of "
                    f"numbers ({type(obs[agent]).__name__}); return a numpy array of its "
                    "observation space's shape") from None
            shape = tuple(self._obs_spaces[agent].shape)
            if value.shape != shape:
                same = " (the same number of values: reshape the observation or fix the " \
                       "space)" if value.size == self._obs_sizes[i] else ""
                raise EnvMismatchError(
                    f"agent '{agent}': observation has {value.size} values of shape "
                    f"{value.shape} but its observation space has shape {shape} "
                    f"({self._obs_sizes[i]} values) at {self._where()}{same}")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise EnvMismatchError(
                    f"agent '{agent}': observation has NaN or inf values at {self._where()}; "
                    "the env must return finite observations")
            out[i, : value.size] = _as_storage(value, out.dtype, f"agent '{agent}': observation",
                                               check=self._t == 0)
        return out

    def _avail_array(self, finished_now: frozenset[str] = frozenset()) -> np.ndarray:
        """Masks of live agents; an agent that has left may only take action 0. An agent that
        finished in this very step keeps its last mask (it may be empty: then action 0). No mask
        for an agent (``avail_actions()`` None or without it) means all its actions."""
        out = np.zeros((self.spec.n_agents, self.spec.n_actions), dtype=bool)
        masks = contract.action_masks(self.env)
        for i, agent in enumerate(self.spec.agents):
            if agent in self._done_agents:
                out[i, 0] = True
                continue
            if masks.get(agent) is None:
                out[i, : self._n_actions[i]] = True
                continue
            mask = np.asarray(masks[agent], dtype=bool).reshape(-1)
            if mask.size != self._n_actions[i]:
                raise EnvMismatchError(
                    f"agent '{agent}': action mask has {mask.size} entries but the action space "
                    f"has {self._n_actions[i]} actions")
            if not mask.any() and agent in finished_now:
                out[i, 0] = True
                continue
            if not mask.any():
                raise EnvMismatchError(
                    f"agent '{agent}': action mask has no available action at step {self._t}; "
                    "every live agent needs at least one (e.g. a no-op)")
            out[i, : mask.size] = mask
        return out

    def _state_array(self, obs: np.ndarray) -> np.ndarray:
        if not self.use_state:
            return np.zeros(0, dtype=np.float32)
        if self._concatenate_obs:
            return np.concatenate([obs[i, :size] for i, size in enumerate(self._obs_sizes)])
        state = np.asarray(self.env.state())
        if state.dtype.kind not in "biuf":
            state = state.astype(np.float32)
        if state.size != self.spec.state_dim:
            raise EnvMismatchError(
                f"state has {state.size} values but the state space has {self.spec.state_dim}")
        if state.dtype.kind == "f" and not np.isfinite(state).all():
            raise EnvMismatchError(
                f"env {contract.name_of(self.env)}: state() has NaN or inf values at "
                f"{self._where()}; it must return finite numbers")
        return _as_storage(state, self.spec.state_dtype, "state", check=self._t == 0)

    # --- API ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._t = 0
        self._done_agents = set()
        self.statistics = {}
        obs, _ = contract.call_reset(self.env, seed)
        obs = self._obs_array(obs)
        return obs, self._state_array(obs), self._avail_array()

    def step(self, actions: np.ndarray) -> tuple:
        actions = np.asarray(actions).reshape(-1)
        live = {}
        for i, agent in enumerate(self.spec.agents):
            if agent in self._done_agents:
                continue
            action = int(actions[i])
            if not 0 <= action < self._n_actions[i]:
                raise ValueError(f"agent '{agent}': action {action} is outside "
                                 f"Discrete({self._n_actions[i]})")
            live[agent] = action + self._action_starts[i]
        result = contract.check_step_result(self.env, self.env.step(live))
        obs, rewards, terminated, truncated, info = result
        self._t += 1
        self.statistics = episode_statistics(contract.step_info(self.env, info),
                                              self.spec.agents)
        for name, table in (("rewards", rewards), ("terminated", terminated),
                            ("truncated", truncated)):
            if not isinstance(table, dict):
                raise EnvMismatchError(
                    f"step() must return {name} as a dict keyed by agent, got "
                    f"{type(table).__name__}")
            missing = [a for a in live if a not in table]
            if missing:
                raise EnvMismatchError(f"step() returned {name} without agents {missing}")
        values = [contract.reward_value(self.env, a, rewards[a], self._where()) for a in live]
        for agent, value in zip(live, values, strict=True):
            if not np.isfinite(value):
                raise EnvMismatchError(
                    f"agent '{agent}': reward is {value} at {self._where()}; the env must "
                    "return finite rewards")
        total = float(np.sum(values))
        reward = total / self.spec.n_agents if self.team_reward == "mean" else total
        finished_now = frozenset(a for a in live if terminated[a] or truncated[a])
        # agents that finished in this step still show their last observation; only from the
        # next step on do they see zeros (a bootstrap at a time limit needs the real one)
        obs_array = self._obs_array(obs)
        avail = self._avail_array(finished_now)
        self._done_agents |= finished_now
        everyone_done = len(self._done_agents) == self.spec.n_agents
        term = bool(everyone_done and any(terminated[a] for a in live))
        trunc = (not term) and (everyone_done or self._t >= self.spec.max_episode_steps)
        return obs_array, self._state_array(obs_array), avail, reward, term, trunc

    def render(self) -> np.ndarray | None:
        return self.env.render()

    def close(self) -> None:
        self.env.close()
