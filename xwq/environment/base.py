"""The dict-API multi-agent environment that users subclass (like XuanCe's RawMultiAgentEnv).

Dicts keyed by agent name exist only here, at the environment boundary; everything past the
adapters is batched arrays (see :mod:`xwq.environment.interfaces`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


class MultiAgentEnv:
    """A cooperative multi-agent environment with a dict API.

    Subclasses set, in ``__init__``:

    - ``agents``: list of agent names (fixed order);
    - ``observation_space`` / ``action_space``: dicts agent -> gymnasium space (Box observations
      of any shape; Discrete actions);
    - ``state_space``: a Box for the global state (omit it and xwq concatenates observations);
    - ``max_episode_steps``: the time limit (xwq truncates there if the env does not).

    and implement ``reset``, ``step`` and, optionally, ``state``, ``avail_actions``, ``render``
    and ``close``. ``step`` returns ``(obs, rewards, terminated, truncated, info)``, each a dict
    keyed by agent (``info`` may be any dict). Run :func:`xwq.check_env` on an instance to have
    every one of these checked with a message that says what to fix.
    """

    agents: list[str]
    observation_space: dict[str, spaces.Space]
    action_space: dict[str, spaces.Space]
    state_space: spaces.Box | None = None
    max_episode_steps: int | None = None

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        raise NotImplementedError

    def state(self) -> np.ndarray:
        """The global state; by default the agents' flattened observations, concatenated."""
        raise NotImplementedError

    def avail_actions(self) -> dict[str, np.ndarray]:
        """Bool mask per agent over its actions; by default every action is available."""
        return {a: np.ones(self.action_space[a].n, dtype=bool) for a in self.agents}

    def render(self) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass
