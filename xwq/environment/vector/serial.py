"""Serial vectorisation of dict-API envs: K :class:`ArrayEnv` stepped in turn, as one VecEnv.

Shape contract (see :mod:`xwq.environment.interfaces`): ``reset`` returns obs
``[K, n_agents, obs_dim]``, state ``[K, state_dim]``, avail ``[K, n_agents, n_actions]``;
``step(actions [K, n_agents], reset_seeds)`` returns a :class:`StepResult` with autoreset
(seeded with ``reset_seeds[k]`` when given) and the envs' episode statistics in ``info``.

:class:`EnvSlot` (one env with autoreset) and :func:`stack_results` are shared with
:mod:`xwq.environment.vector.subproc`, so both vectorisations give identical data for identical
seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xwq.environment.adapters.array_env import ArrayEnv
from xwq.environment.interfaces import EnvSpec, StepResult, VecEnv, per_env_seeds

EnvFactory = Callable[[], ArrayEnv]


class EnvSlot:
    """One env with autoreset: ``step`` returns (next_obs, state, avail, r, term, trunc,
    final_obs, final_state, final_avail, statistics)."""

    def __init__(self, factory: EnvFactory) -> None:
        self.env = factory()

    def reset(self, seed: int | None) -> tuple:
        return self.env.reset(seed=seed)

    def step(self, actions: np.ndarray, reset_seed: int | None = None) -> tuple:
        """One step; if the episode ends, the env restarts with ``reset_seed`` (None: its own
        stream continues)."""
        obs, state, avail, reward, term, trunc = self.env.step(actions)
        final = (obs, state, avail)
        statistics = self.env.statistics  # the ended episode's, before the reset clears them
        if term or trunc:
            obs, state, avail = self.env.reset(seed=reset_seed)
        return obs, state, avail, reward, term, trunc, *final, statistics


def stack_statistics(statistics: Sequence[dict[str, float]]) -> dict[str, np.ndarray]:
    """K envs' statistics dicts as ``{name: [K] float64}``, NaN where an env has no value."""
    names = sorted({name for entry in statistics for name in entry})
    return {name: np.array([entry.get(name, np.nan) for entry in statistics], dtype=np.float64)
            for name in names}


def stack_results(results: Sequence[tuple]) -> StepResult:
    """The :meth:`EnvSlot.step` tuples of K envs as one :class:`StepResult` (K first)."""
    columns = list(zip(*results))
    return StepResult(
        obs=np.stack(columns[0]), state=np.stack(columns[1]), avail=np.stack(columns[2]),
        reward=np.asarray(columns[3], dtype=np.float32),
        terminated=np.asarray(columns[4], dtype=bool),
        truncated=np.asarray(columns[5], dtype=bool),
        final_obs=np.stack(columns[6]), final_state=np.stack(columns[7]),
        final_avail=np.stack(columns[8]), info=stack_statistics(columns[9]),
    )


class SerialVecEnv(VecEnv):
    """K envs stepped one after another in this process."""

    def __init__(self, factories: Sequence[EnvFactory]) -> None:
        self.slots = [EnvSlot(f) for f in factories]
        self.num_envs = len(self.slots)
        self.spec: EnvSpec = self.slots[0].env.spec

    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seeds = per_env_seeds(seed, self.num_envs)
        out = [slot.reset(seeds[k]) for k, slot in enumerate(self.slots)]
        obs, state, avail = zip(*out)
        return np.stack(obs), np.stack(state), np.stack(avail)

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        actions = np.asarray(actions)
        seeds = per_env_seeds(reset_seeds, self.num_envs)
        return stack_results([slot.step(actions[k], seeds[k])
                              for k, slot in enumerate(self.slots)])

    def render(self, index: int = 0) -> np.ndarray | None:
        return self.slots[index].env.render()

    def close(self) -> None:
        for slot in self.slots:
            slot.env.close()
