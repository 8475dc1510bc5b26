"""The one-step matrix game of the WQMIX paper: env ``"matrix_game"``, env_id ``"nonmonotonic"``.

Two agents each pick one of n actions once; the team receives ``payoff[a1][a2]`` and the episode
ends (terminated, never truncated). Observation and state are ``ones(5)``: the agents learn from
the reward alone. The default payoff (rows: agent 1, columns: agent 2) is the paper's

::

      8  -12  -12
    -12    0    0
    -12    0    0

whose optimum (8) a monotonic mixer such as QMIX usually misses under uniform exploration, while
CW-/OW-QMIX find it. ``env_kwargs: {payoff: [[...], ...]}`` plays any other square game.

Two faces of the same game:

- :class:`MatrixGameVecEnv` — the native vectorised env (``REGISTRY_NATIVE_ENV["matrix_game"]``),
  K games stepped as arrays;
- :class:`MatrixGameParallelEnv` — one game as a PettingZoo ``ParallelEnv``
  (``REGISTRY_ENV["matrix_game"]`` through :func:`make_matrix_game`), used by
  ``vectorize: serial`` / ``subprocess`` and by anything that speaks PettingZoo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from xwq.environment.interfaces import (
    EnvSpec,
    NativeVecEnv,
    StepResult,
    check_env_kwargs,
    per_env_seeds,
)
from xwq.errors import ConfigError
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV, require_choice

ENV_IDS = ("nonmonotonic",)
NONMONOTONIC_PAYOFF = ((8.0, -12.0, -12.0), (-12.0, 0.0, 0.0), (-12.0, 0.0, 0.0))
OBS_DIM = 5
AGENTS = ("agent_0", "agent_1")


def _check_env_id(env_id: str) -> None:
    require_choice("env_id", env_id, ENV_IDS, where=" for env 'matrix_game'",
                   hint="(play another game with env_kwargs: {payoff: [[...], ...]})")


def payoff_matrix(payoff: Sequence[Sequence[float]] | np.ndarray | None) -> np.ndarray:
    """``payoff`` as a float32 ``[n, n]`` array (the paper's game when None); errors say why not."""
    if payoff is None:
        payoff = NONMONOTONIC_PAYOFF
    try:
        matrix = np.asarray(payoff, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConfigError(f"env 'matrix_game': payoff must be a square nested list of numbers, "
                          f"got {payoff!r}") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ConfigError(f"env 'matrix_game': payoff must be an n×n nested list (both agents have "
                          f"n actions), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ConfigError("env 'matrix_game': payoff entries must be finite numbers")
    return matrix


@REGISTRY_NATIVE_ENV.register("matrix_game")
class MatrixGameVecEnv(NativeVecEnv):
    """K one-step matrix games stepped together.

    Every step ends every game (``terminated`` all True, ``truncated`` all False) and autoresets
    it; observations are ``ones`` before and after, so ``obs`` and ``final_obs`` hold equal values
    (in separate arrays).

    Shapes: obs ``[K, 2, 5]``, state ``[K, 5]``, avail ``[K, 2, n]`` (all True), actions
    ``[K, 2]``, reward ``[K]`` = ``payoff[a1, a2]``; ``info`` reports the joint action played,
    ``action_0`` and ``action_1`` ``[K]`` (episode statistics: their test mean shows which cell
    a greedy policy picks).

    Args:
        env_id: ``"nonmonotonic"``.
        num_envs: K.
        team_reward: accepted for the common constructor and ignored: the payoff already is the
            team reward.
        payoff: n×n nested list (default: the paper's game); n is the number of actions.
        max_episode_steps: accepted (``make_envs`` passes the config key) but every game lasts
            one step whatever it is, so the spec always says 1.
    """

    env_ids = ENV_IDS

    def __init__(self, env_id: str = "nonmonotonic", num_envs: int = 1,
                 team_reward: str = "mean", payoff: Sequence[Sequence[float]] | None = None,
                 max_episode_steps: int = 1) -> None:
        _check_env_id(env_id)
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        if max_episode_steps < 1:
            raise ConfigError(f"env 'matrix_game': max_episode_steps must be >= 1, "
                              f"got {max_episode_steps}")
        self.payoff = payoff_matrix(payoff)
        self.num_envs = int(num_envs)
        n_actions = self.payoff.shape[0]
        # bounds as the dict version's Box(0, 1) spaces declare them
        self.spec = EnvSpec(AGENTS, OBS_DIM, OBS_DIM, n_actions, max_episode_steps=1,
                            obs_low=0.0, obs_high=1.0, state_low=0.0, state_high=1.0)
        # The game draws nothing at random; the generators exist so that the seeding contract
        # (NativeVecEnv.rngs) looks the same as for every other env.
        self.rngs = [np.random.default_rng() for _ in range(self.num_envs)]

    def _first(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        K, n = self.num_envs, self.spec.n_agents
        return (np.ones((K, n, OBS_DIM), dtype=np.float32),
                np.ones((K, OBS_DIM), dtype=np.float32),
                np.ones((K, n, self.spec.n_actions), dtype=bool))

    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.seed_envs(range(self.num_envs), per_env_seeds(seed, self.num_envs))
        return self._first()

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        actions = self.check_actions(actions, "matrix_game")
        reward = self.payoff[actions[:, 0], actions[:, 1]].astype(np.float32)
        final_obs, final_state, final_avail = self._first()
        self.seed_envs(range(self.num_envs), reset_seeds)  # every game ends and restarts
        obs, state, avail = self._first()
        return StepResult(
            obs=obs, state=state, avail=avail, reward=reward,
            terminated=np.ones(self.num_envs, dtype=bool),
            truncated=np.zeros(self.num_envs, dtype=bool),
            final_obs=final_obs, final_state=final_state, final_avail=final_avail,
            info={f"action_{i}": actions[:, i].astype(np.float64) for i in range(len(AGENTS))})



class MatrixGameParallelEnv(ParallelEnv):
    """One matrix game as a PettingZoo ``ParallelEnv``.

    Agents ``agent_0`` (rows) and ``agent_1`` (columns); observations ``ones(5)`` in
    ``Box(0, 1, (5,))``; actions ``Discrete(n)``; each agent's reward is the team payoff; every
    episode terminates after one step. ``infos[agent]["action_mask"]`` is all ones; after the
    step every agent's info also holds the joint action, ``action_0`` and ``action_1``.
    """

    metadata = {"name": "matrix_game_nonmonotonic", "render_modes": []}

    def __init__(self, payoff: Sequence[Sequence[float]] | None = None) -> None:
        self.payoff = payoff_matrix(payoff)
        n_actions = self.payoff.shape[0]
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.render_mode = None
        self.max_episode_steps = 1
        self._observation_spaces = {
            a: spaces.Box(0.0, 1.0, (OBS_DIM,), dtype=np.float32) for a in AGENTS}
        self._action_spaces = {a: spaces.Discrete(n_actions) for a in AGENTS}
        self.state_space = spaces.Box(0.0, 1.0, (OBS_DIM,), dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def _observe(self) -> tuple[dict, dict]:
        mask = np.ones(self.payoff.shape[0], dtype=np.int8)
        obs = {a: np.ones(OBS_DIM, dtype=np.float32) for a in AGENTS}
        return obs, {a: {"action_mask": mask.copy()} for a in AGENTS}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents = list(AGENTS)
        return self._observe()

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("matrix_game: step() after the game ended; call reset() first")
        missing = [a for a in AGENTS if a not in actions]
        if missing:
            raise ValueError(f"matrix_game: no action for {missing}; both agents act each game")
        u1, u2 = (int(actions[a]) for a in AGENTS)
        n = self.payoff.shape[0]
        if not (0 <= u1 < n and 0 <= u2 < n):
            raise ValueError(f"matrix_game: actions must be in [0, {n}), got {actions}")
        reward = float(self.payoff[u1, u2])
        obs, infos = self._observe()
        joint = {f"action_{i}": u for i, u in enumerate((u1, u2))}
        for info in infos.values():
            info.update(joint)
        self.agents = []
        return (obs, dict.fromkeys(AGENTS, reward), dict.fromkeys(AGENTS, True),
                dict.fromkeys(AGENTS, False), infos)

    def state(self) -> np.ndarray:
        return np.ones(OBS_DIM, dtype=np.float32)

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass


@REGISTRY_ENV.register("matrix_game")
def make_matrix_game(env_id: str = "nonmonotonic", **env_kwargs: Any) -> MatrixGameParallelEnv:
    """``REGISTRY_ENV["matrix_game"]``: one game as a PettingZoo ParallelEnv."""
    _check_env_id(env_id)
    check_env_kwargs(MatrixGameParallelEnv, "matrix_game", env_id, env_kwargs, positional=0)
    return MatrixGameParallelEnv(**env_kwargs)


make_matrix_game.check_env_id = _check_env_id  # read by make.check_env_id
