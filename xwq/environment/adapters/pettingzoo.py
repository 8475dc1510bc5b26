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

from xwq.environment.adapters import contract
from xwq.environment.interfaces import MultiAgentEnv
from xwq.errors import EnvMismatchError

#: attributes that hold an episode's time limit, in order of preference
_TIME_LIMIT_NAMES = ("max_cycles", "max_episode_steps", "max_steps", "episode_limit")
#: attributes through which wrappers reach the env they wrap
_INNER_ENV_NAMES = ("env", "aec_env", "par_env", "unwrapped", "_env", "raw_env")
_WRAPPER_DEPTH = 10


def _attribute(obj: Any, name: str) -> Any:
    """``obj.name`` or None; a wrapper's ``__getattr__`` may raise anything for a name it
    refuses to forward."""
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return None


def _env_like_attributes(obj: Any) -> list[Any]:
    """The objects among ``obj``'s instance attributes that have ``reset`` and ``step``
    methods: envs a wrapper holds under a name of its own (pogema's ``.pogema``)."""
    try:
        values = list(vars(obj).values())
    except TypeError:  # no __dict__
        return []
    return [v for v in values if callable(_attribute(v, "reset"))
            and callable(_attribute(v, "step")) and not isinstance(v, type)]


class PettingZooEnv(MultiAgentEnv):
    """Wraps a PettingZoo ``ParallelEnv`` instance.

    Args:
        env: the ParallelEnv.
        max_episode_steps: time limit; when not given, found on the env or down its wrapper
            chain (``env``, ``aec_env``, ``par_env``, ``unwrapped``, ``_env``, ``raw_env`` or
            any attribute holding an object with ``reset`` and ``step``; 10 levels): an
            attribute ``max_cycles``, ``max_episode_steps``, ``max_steps`` or
            ``episode_limit``, or ``grid_config.max_episode_steps`` (pogema).
    """

    def __init__(self, env: Any, max_episode_steps: int | None = None) -> None:
        self.env = env
        self.agents = list(env.possible_agents)
        raw_obs_spaces = contract.agent_spaces(env, "observation_space", self.agents)
        self.observation_space = {}
        self._dict_obs = {}
        self._raw_spaces: dict[str, spaces.Space] = {}
        self._has_state = True
        for agent in self.agents:
            space = raw_obs_spaces[agent]
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
        self.action_space = contract.agent_spaces(env, "action_space", self.agents)
        self.state_space = getattr(env, "state_space", None)
        if not isinstance(self.state_space, spaces.Box):
            self.state_space = None
        self.max_episode_steps = max_episode_steps or self._find_time_limit(env)
        self._masks: dict[str, np.ndarray] = {}
        self._last_obs: dict[str, np.ndarray] = {}

    @staticmethod
    def _find_time_limit(env: Any) -> int | None:
        """The env's time limit, looked for breadth-first down its wrapper chain (PettingZoo
        keeps ``max_cycles`` one or more wrappers down; pogema in ``grid_config``)."""
        seen: set[int] = set()
        level = [env]
        for _ in range(_WRAPPER_DEPTH):
            below = []
            for obj in level:
                if obj is None or id(obj) in seen:
                    continue
                seen.add(id(obj))
                holders = (obj, _attribute(obj, "grid_config"))
                for holder, name in ((h, n) for h in holders for n in _TIME_LIMIT_NAMES):
                    value = _attribute(holder, name)
                    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
                            and value > 0:
                        return int(value)
                below += [_attribute(obj, name) for name in _INNER_ENV_NAMES]
                below += _env_like_attributes(obj)
            level = below
        return None

    def _split(self, obs: dict[str, Any], infos: dict[str, Any]) -> dict[str, np.ndarray]:
        """Keep observations, remember action masks (from obs dicts or infos)."""
        out = {}
        for agent in self.agents:
            if agent not in obs:
                space = self.observation_space[agent]
                out[agent] = np.zeros(space.shape, dtype=space.dtype)
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
            out[agent] = np.asarray(value)  # in its own dtype: uint8 pixels stay uint8
        self._last_obs = out
        return out

    def reset(self, seed: int | None = None) -> tuple[dict, dict]:
        obs, infos = contract.call_reset(self.env, seed)
        self._check_obs_dict(obs, "reset()")
        return self._split(obs, infos), infos

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        live = {a: int(u) for a, u in actions.items() if a in self.env.agents}
        result = contract.check_step_result(self.env, self.env.step(live))
        obs, rewards, terminated, truncated, infos = result
        self._check_obs_dict(obs, "step()")
        infos = contract.step_info(self.env, infos)
        return self._split(obs, infos), rewards, terminated, truncated, infos

    def _check_obs_dict(self, obs: Any, where: str) -> None:
        if not isinstance(obs, dict):
            raise EnvMismatchError(
                f"env {contract.name_of(self.env)}: {where} returned observations as "
                f"{type(obs).__name__}; a ParallelEnv returns a dict keyed by agent name")

    @property
    def state_from_observations(self) -> bool:
        """Whether ``state()`` concatenates observations (the env has no usable state)."""
        return not self._has_state

    def state(self) -> np.ndarray:
        if self._has_state:
            try:
                return np.asarray(self.env.state()).reshape(-1)
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
