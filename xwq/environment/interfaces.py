"""Vectorised environments: K independent episodes stepped together, all arrays.

Every vectorised env — the serial and subprocess wrappers around dict-API envs, and the native
numpy envs (matrix game, predator-prey, native MPE) — implements :class:`VecEnv`:

``reset(seed=None) -> (obs, state, avail)``
    obs ``[K, n_agents, obs_dim]`` float32, state ``[K, state_dim]`` float32,
    avail ``[K, n_agents, n_actions]`` bool.
``step(actions) -> StepResult``
    actions ``[K, n_agents]`` int. Envs whose episode ended (terminated or truncated) are reset
    automatically: ``obs/state/avail`` are then the *first* observation of the next episode, and
    ``final_obs/final_state/final_avail`` hold the last observation of the episode that ended
    (for envs that did not end they equal ``obs/state/avail``). The two are never mixed.

Seeding: ``reset(seed=s)`` seeds env k with ``s + k``; later autoresets continue each env's own
random stream, so the same seed gives the same data whatever the vectorisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xwq.environment.spec import EnvSpec


@dataclass
class StepResult:
    """What one step of K envs returns (see the module docstring for the autoreset rule).

    Shapes: obs/final_obs ``[K, n_agents, obs_dim]``, state/final_state ``[K, state_dim]``,
    avail/final_avail ``[K, n_agents, n_actions]``, reward/terminated/truncated ``[K]``.
    ``reward`` is the team reward (float32); ``terminated`` is a true end, ``truncated`` a time
    limit (bootstrap through it).
    """

    obs: np.ndarray
    state: np.ndarray
    avail: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    final_state: np.ndarray
    final_avail: np.ndarray
    info: dict

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VecEnv:
    """Base class of every vectorised env. Subclasses set ``spec`` and ``num_envs``."""

    spec: EnvSpec
    num_envs: int

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def step(self, actions: np.ndarray) -> StepResult:
        raise NotImplementedError

    def render(self, index: int = 0) -> np.ndarray | None:
        """An RGB frame ``[H, W, 3]`` uint8 of env ``index``, or None if it cannot draw."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> VecEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def n_agents(self) -> int:
        return self.spec.n_agents


class NativeVecEnv(VecEnv):
    """A vectorised env written directly in arrays (numpy over the K envs).

    Registered in ``REGISTRY_NATIVE_ENV[env_name]`` and chosen by ``vectorize: auto|native``
    for the ``env_ids`` it lists. Constructed as ``cls(env_id, num_envs, team_reward=...,
    **env_kwargs)``.
    """

    env_ids: tuple[str, ...] = ()

    @classmethod
    def supports(cls, env_id: str, env_kwargs: dict) -> bool:
        """Whether this native env implements ``env_id`` with these kwargs; when it does not,
        ``vectorize: auto`` falls back to the serial wrapper of the registered dict env."""
        return env_id in cls.env_ids

    #: one numpy Generator per env (env k seeded with seed + k), set by the subclass
    rngs: list[np.random.Generator]
