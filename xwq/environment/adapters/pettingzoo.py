"""Any PettingZoo ``ParallelEnv`` as a :class:`MultiAgentEnv`, without subclassing.

- observations of any Box shape (flattened later), Discrete (one-hot) or MultiBinary, or dicts
  ``{"observation", "action_mask"}`` of those;
- action masks from ``info[agent]["action_mask"]`` or the observation dict, when present;
- ``state()`` when the env has one, else the concatenated observations;
- agents that leave early (absent from the returned dicts) are kept with zero observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.environment.interfaces import MultiAgentEnv


class PettingZooEnv(MultiAgentEnv):
    """Wraps a PettingZoo ``ParallelEnv`` instance.

    Args:
        env: the ParallelEnv.
        max_episode_steps: time limit; taken from the env's ``max_cycles`` or
            ``max_episode_steps`` attribute (or its unwrapped env's) when not given.
    """

    def __init__(self, env: Any, max_episode_steps: int | None = None) -> None:
        self.env = env
        self.agents = list(env.possible_agents)
        self.observation_space = {}
        self._dict_obs = {}
        self._raw_spaces: dict[str, spaces.Space] = {}
        self._has_state = True
        for agent in self.agents:
            space = env.observation_space(agent)
            if isinstance(space, spaces.Dict) and "observation" in space.spaces:
                self._dict_obs[agent] = True
                space = space.spaces["observation"]
            else:
                self._dict_obs[agent] = False
            self._raw_spaces[agent] = space
            if isinstance(space, spaces.Discrete):
                space = spaces.Box(0.0, 1.0, (int(space.n),), dtype=np.float32)
            elif isinstance(space, spaces.MultiBinary):
                space = spaces.Box(0.0, 1.0, tuple(np.atleast_1d(space.n)), dtype=np.float32)
            self.observation_space[agent] = space
        self.action_space = {agent: env.action_space(agent) for agent in self.agents}
        self.state_space = getattr(env, "state_space", None)
        if not isinstance(self.state_space, spaces.Box):
            self.state_space = None
        self.max_episode_steps = max_episode_steps or self._find_time_limit(env)
        self._masks: dict[str, np.ndarray] = {}
        self._last_obs: dict[str, np.ndarray] = {}

    @staticmethod
    def _find_time_limit(env: Any) -> int | None:
        for obj in (env, getattr(env, "unwrapped", None)):
            for name in ("max_episode_steps", "max_cycles"):
                value = getattr(obj, name, None)
                if isinstance(value, int) and value > 0:
                    return value
        return None

    def _split(self, obs: dict[str, Any], infos: dict[str, Any]) -> dict[str, np.ndarray]:
        """Keep observations, remember action masks (from obs dicts or infos)."""
        out = {}
        for agent in self.agents:
            if agent not in obs:
                out[agent] = np.zeros(self.observation_space[agent].shape, dtype=np.float32)
                self._masks[agent] = None
                continue
            value = obs[agent]
            mask = None
            if self._dict_obs[agent]:
                mask = value.get("action_mask")
                value = value["observation"]
            info = infos.get(agent) if isinstance(infos, dict) else None
            if mask is None and isinstance(info, dict):
                mask = info.get("action_mask")
            self._masks[agent] = None if mask is None else np.asarray(mask, dtype=bool)
            raw = self._raw_spaces[agent]
            if isinstance(raw, spaces.Discrete):
                one_hot = np.zeros(int(raw.n), dtype=np.float32)
                one_hot[int(value) - int(raw.start)] = 1.0
                value = one_hot
            out[agent] = np.asarray(value, dtype=np.float32)
        self._last_obs = out
        return out

    def reset(self, seed: int | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed)
        return self._split(obs, infos or {}), infos or {}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        live = {a: int(u) for a, u in actions.items() if a in self.env.agents}
        obs, rewards, terminated, truncated, infos = self.env.step(live)
        return self._split(obs, infos or {}), rewards, terminated, truncated, infos or {}

    def state(self) -> np.ndarray:
        if self._has_state:
            try:
                return np.asarray(self.env.state(), dtype=np.float32).reshape(-1)
            except (NotImplementedError, TypeError, AttributeError):
                # no usable global state (ParallelEnv.state raises, or ``state`` is not a method)
                self._has_state = False
        return np.concatenate([self._last_obs[a].reshape(-1) for a in self.agents])

    def avail_actions(self) -> dict[str, np.ndarray]:
        out = {}
        for agent in self.agents:
            mask = self._masks.get(agent)
            n = self.action_space[agent].n
            out[agent] = np.ones(n, dtype=bool) if mask is None else mask
        return out

    def render(self) -> np.ndarray | None:
        frame = self.env.render()
        return frame if isinstance(frame, np.ndarray) else None

    def close(self) -> None:
        self.env.close()
