"""Serial vectorisation of dict-API envs: K :class:`ArrayEnv` stepped in turn, as one VecEnv.

Shape contract (see :mod:`xwq.environment.interfaces`): ``reset`` returns obs
``[K, n_agents, obs_dim]``, state ``[K, state_dim]``, avail ``[K, n_agents, n_actions]``;
``step(actions [K, n_agents])`` returns a :class:`StepResult` with autoreset.

:class:`EnvSlot` (one env with autoreset) and :func:`stack_results` are shared with
:mod:`xwq.environment.vector.subproc`, so both vectorisations give identical data for identical
seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xwq.environment.adapters.array_env import ArrayEnv
from xwq.environment.interfaces import EnvSpec, StepResult, VecEnv

EnvFactory = Callable[[], ArrayEnv]


class EnvSlot:
    """One env with autoreset: returns (next_obs, state, avail, r, term, trunc, final...)."""

    def __init__(self, factory: EnvFactory) -> None:
        self.env = factory()

    def reset(self, seed: int | None) -> tuple:
        return self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> tuple:
        obs, state, avail, reward, term, trunc = self.env.step(actions)
        final = (obs, state, avail)
        if term or trunc:
            obs, state, avail = self.env.reset(seed=None)
        return obs, state, avail, reward, term, trunc, *final


def stack_results(results: Sequence[tuple]) -> StepResult:
    """The :meth:`EnvSlot.step` tuples of K envs as one :class:`StepResult` (K first)."""
    columns = list(zip(*results))
    return StepResult(
        obs=np.stack(columns[0]), state=np.stack(columns[1]), avail=np.stack(columns[2]),
        reward=np.asarray(columns[3], dtype=np.float32),
        terminated=np.asarray(columns[4], dtype=bool),
        truncated=np.asarray(columns[5], dtype=bool),
        final_obs=np.stack(columns[6]), final_state=np.stack(columns[7]),
        final_avail=np.stack(columns[8]), info={},
    )


class SerialVecEnv(VecEnv):
    """K envs stepped one after another in this process."""

    def __init__(self, factories: Sequence[EnvFactory]) -> None:
        self.slots = [EnvSlot(f) for f in factories]
        self.num_envs = len(self.slots)
        self.spec: EnvSpec = self.slots[0].env.spec

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = [s.reset(None if seed is None else seed + k) for k, s in enumerate(self.slots)]
        obs, state, avail = zip(*out)
        return np.stack(obs), np.stack(state), np.stack(avail)

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        return stack_results([slot.step(actions[k]) for k, slot in enumerate(self.slots)])

    def render(self, index: int = 0) -> np.ndarray | None:
        return self.slots[index].env.render()

    def close(self) -> None:
        for slot in self.slots:
            slot.env.close()
