"""MPE ``simple_spread_v3`` written in numpy over K envs: the fast path for env ``"mpe"``.

:class:`SimpleSpreadVecEnv` reproduces mpe2's ``simple_spread_v3`` with discrete actions
(``continuous_actions=False``) — physics, observations, rewards, state and time limit — but
advances all K worlds with array operations instead of K Python ``World`` objects. It is chosen
by ``make_envs`` for env ``mpe``, env_id ``simple_spread_v3`` when ``vectorize`` is ``auto`` or
``native``; other MPE scenarios go through the PettingZoo adapter.

Faithfulness (checked against mpe2 in ``tests/test_mpe_native.py``):

- world: N agents (size 0.15, mass 1, collide) and N landmarks (size 0.05, no collision);
  dt 0.1, damping 0.25, action acceleration 5, no max speed; every agent pair pushes with
  mpe2's soft contact force ``1e2 * delta / dist * logaddexp(0, -(dist - 0.3) / 1e-3) * 1e-3``
  (applied at every distance, as mpe2 does), summed in mpe2's order;
- actions ``[no-op, left, right, down, up]``;
- observation of agent i: ``[vel_i, pos_i, landmark_l - pos_i for each l,
  pos_j - pos_i for each j != i, comm_j for each j != i]`` (comm is always zero: agents are
  silent), so ``obs_dim = 6N``; the state is all agents' observations concatenated (mpe2's
  ``state()``), ``state_dim = 6N²``;
- agent reward = ``global * (1 - local_ratio) + local * local_ratio`` with
  ``global = -sum over landmarks of the closest agent's distance`` and ``local = -(number of
  other agents closer than 0.3)``; the team reward is their mean or sum (``team_reward``);
- truncation after ``max_cycles`` steps, never terminated (unless ``terminate_on_success``);
- randomness: env k owns one ``np.random.Generator`` built exactly as mpe2 builds its
  ``np_random`` (``gymnasium.utils.seeding.np_random``) and draws the initial positions in the
  same order, so ``reset(seed=s)`` gives env k the same worlds, episode after episode, as
  ``mpe2.simple_spread_v3.parallel_env().reset(seed=s + k)`` followed by ``reset()`` calls.

Partial observability (``num_agent_neighbors``, ``num_landmark_neighbors``), continuous actions
and ``benchmark_data`` are not implemented here: use ``vectorize: serial`` for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from xwq.environment.interfaces import EnvSpec, NativeVecEnv, StepResult, per_env_seeds
from xwq.errors import ConfigError
from xwq.registry import REGISTRY_NATIVE_ENV

# mpe2's World and entity constants (mpe2/_mpe_utils/core.py, simple_spread.py, simple_env.py).
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
ACCEL = 5.0                  # "sensitivity" applied to the discrete action vector
AGENT_SIZE = 0.15
LANDMARK_SIZE = 0.05         # Entity's default size; simple_spread does not change it
MASS = 1.0
DIM_C = 2                    # communication channels (always zero: agents are silent)
CAPTURE_RADIUS = 0.1         # terminate_on_success: a landmark is covered within this distance
# Discrete action -> unit force direction, as SimpleEnv._set_action: no-op, -x, +x, -y, +y.
MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
N_ACTIONS = len(MOVES)
ACTION_FORCES = MOVES * ACCEL  # each action's force, computed once (the same products)

AGENT_COLOR = np.array([0.35, 0.35, 0.85]) * 200   # mpe2 draws entity.color * 200
LANDMARK_COLOR = np.array([0.25, 0.25, 0.25]) * 200

_UNSUPPORTED = {  # kwarg -> the value that is the only one the native env implements
    "continuous_actions": False,
    "benchmark_data": False,
    "num_agent_neighbors": None,
    "num_landmark_neighbors": None,
}


@REGISTRY_NATIVE_ENV.register("mpe")
class SimpleSpreadVecEnv(NativeVecEnv):
    """K simple_spread_v3 worlds stepped together in numpy (float64 physics, float32 output).

    Args:
        env_id: must be ``"simple_spread_v3"``.
        num_envs: K.
        team_reward: ``"mean"`` or ``"sum"`` of the agents' rewards.
        N: number of agents and of landmarks.
        local_ratio: weight of each agent's collision penalty in its reward.
        max_cycles: episode length (time-limit truncation).
        dynamic_rescaling: only changes drawn sizes in :meth:`render`, as in mpe2.
        curriculum: mpe2's curriculum flag; in stage 0 (the initial one) there is no collision
            penalty. Change stages with :meth:`set_curriculum_stage`.
        terminate_on_success: terminate when every landmark has an agent within 0.1.
        max_episode_steps: optional time limit that overrides ``max_cycles`` in the spec;
            episodes end at the smaller of the two (as the serial PettingZoo path does).
        render_mode: accepted for compatibility with mpe2's kwargs and ignored;
            :meth:`render` always returns an RGB array.

    Shapes: obs ``[K, N, 6N]`` float32, state ``[K, 6N²]`` float32, avail ``[K, N, 5]`` bool
    (always all available), reward/terminated/truncated ``[K]``.
    """

    env_ids = ("simple_spread_v3",)
    render_size = 300  # pixels per side of render() frames

    @classmethod
    def supports(cls, env_id: str, env_kwargs: dict) -> bool:
        return env_id in cls.env_ids and all(
            env_kwargs[key] == default for key, default in _UNSUPPORTED.items()
            if key in env_kwargs)

    def __init__(self, env_id: str, num_envs: int, team_reward: str = "mean", *,
                 N: int = 3, local_ratio: float = 0.5, max_cycles: int = 25,
                 dynamic_rescaling: bool = True, curriculum: bool = False,
                 terminate_on_success: bool = False, max_episode_steps: int | None = None,
                 render_mode: str | None = None, **unsupported: Any) -> None:
        if env_id not in self.env_ids:
            raise ConfigError(f"SimpleSpreadVecEnv implements only {list(self.env_ids)}, "
                              f"not {env_id!r}; use vectorize: serial for other MPE scenarios")
        for key, value in unsupported.items():
            if key not in _UNSUPPORTED:
                raise ConfigError(
                    f"env 'mpe', env_id {env_id!r}: unknown env_kwargs key {key!r} for the "
                    "native simple_spread_v3")
            if value != _UNSUPPORTED[key]:
                raise ConfigError(
                    f"env_kwargs {key}={value!r} is not implemented by the native "
                    f"simple_spread_v3 (only {key}={_UNSUPPORTED[key]!r}); set vectorize: "
                    "serial to run it through mpe2")
        if not (isinstance(N, int) and N >= 2):
            raise ConfigError(f"env_kwargs N={N!r}: simple_spread needs an integer N >= 2")
        if not 0.0 <= local_ratio <= 1.0:
            raise ConfigError(f"env_kwargs local_ratio={local_ratio!r} must be in [0, 1]")
        if not (isinstance(max_cycles, int) and max_cycles > 0):
            raise ConfigError(f"env_kwargs max_cycles={max_cycles!r} must be a positive int")
        if team_reward not in ("mean", "sum"):
            raise ConfigError(f"team_reward={team_reward!r}: choose 'mean' or 'sum'")
        if num_envs < 1:
            raise ConfigError(f"num_envs={num_envs} must be at least 1")

        self.num_envs = num_envs
        self.N = N
        self.local_ratio = float(local_ratio)
        self.max_cycles = max_cycles
        self.dynamic_rescaling = dynamic_rescaling
        self.curriculum = curriculum
        self.curriculum_stage = 0
        self.terminate_on_success = terminate_on_success
        self.team_reward = team_reward
        limit = max_episode_steps or max_cycles
        self._time_limit = min(limit, max_cycles)
        self.spec = EnvSpec(agents=tuple(f"agent_{i}" for i in range(N)), obs_dim=6 * N,
                            state_dim=6 * N * N, n_actions=N_ACTIONS, max_episode_steps=limit)

        # Index tables, computed once: the other agents j != i of each agent i, in order.
        self._others = np.array([[j for j in range(N) if j != i] for i in range(N)])
        self._off_diagonal = ~np.eye(N, dtype=bool)
        self._eye = np.eye(N)

        self.agent_pos = np.zeros((num_envs, N, 2))
        self.agent_vel = np.zeros((num_envs, N, 2))
        self.landmark_pos = np.zeros((num_envs, N, 2))
        self.t = np.zeros(num_envs, dtype=np.int64)
        self._cam_range0 = np.ones(num_envs)
        self._avail = np.ones((num_envs, N, N_ACTIONS), dtype=bool)
        # Like mpe2's constructor: an unseeded generator per env, and one world drawn from it.
        self.rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._reset_worlds(np.arange(num_envs))

    def set_curriculum_stage(self, stage: int) -> None:
        """mpe2's curriculum: stage 0 has no collision penalty, stage 1 restores it."""
        self.curriculum_stage = max(0, min(int(stage), 1))

    # --- episodes -----------------------------------------------------------------------------
    def _reset_worlds(self, envs: np.ndarray) -> None:
        """New initial worlds for ``envs``, drawn as mpe2's ``reset_world``: each agent's
        position ``uniform(-1, 1, 2)`` in turn, then each landmark's, from the env's own
        Generator."""
        n = self.N
        for k in envs:
            draws = self.rngs[k].uniform(-1.0, 1.0, (2 * n, 2))
            self.agent_pos[k] = draws[:n]
            self.landmark_pos[k] = draws[n:]
        self.agent_vel[envs] = 0.0
        self.t[envs] = 0
        everything = np.concatenate([self.agent_pos[envs], self.landmark_pos[envs]], axis=1)
        self._cam_range0[envs] = np.abs(everything).max(axis=(1, 2))

    @staticmethod
    def make_rng(seed: int) -> np.random.Generator:
        """mpe2's generator for ``seed`` (``gymnasium.utils.seeding.np_random``)."""
        return seeding.np_random(seed)[0]

    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reset every env; ``seed`` seeds env k with ``seed + k`` (a sequence: ``seed[k]``;
        None continues streams)."""
        self.seed_envs(range(self.num_envs), per_env_seeds(seed, self.num_envs))
        self._reset_worlds(np.arange(self.num_envs))
        obs = self._observe()
        return obs, obs.reshape(self.num_envs, -1).copy(), self._avail.copy()

    def _observe(self) -> np.ndarray:
        """Observations ``[K, N, 6N]`` float32, computed in float64 like mpe2 then cast."""
        n, pos = self.N, self.agent_pos
        obs = np.zeros((self.num_envs, n, 6 * n), dtype=np.float32)  # comm part stays zero
        obs[:, :, 0:2] = self.agent_vel
        obs[:, :, 2:4] = pos
        landmarks = self.landmark_pos[:, None, :, :] - pos[:, :, None, :]    # [K, N, N, 2]
        obs[:, :, 4:4 + 2 * n] = landmarks.reshape(self.num_envs, n, 2 * n)
        others = pos[:, self._others, :] - pos[:, :, None, :]               # [K, N, N-1, 2]
        obs[:, :, 4 + 2 * n:2 + 4 * n] = others.reshape(self.num_envs, n, 2 * (n - 1))
        return obs

    # --- dynamics -----------------------------------------------------------------------------
    def _physics(self, actions: np.ndarray) -> np.ndarray:
        """One World.step for all envs; returns agent-agent distances ``[K, N, N]``.

        Bit for bit mpe2's arithmetic, in as few array operations as that allows (a step of
        8 envs costs about as much as its ~40 numpy calls, whatever their size)."""
        pos = self.agent_pos
        # delta[k, i, j] = pos_i - pos_j; dist is exactly symmetric, as in mpe2.
        delta = pos[:, :, None, :] - pos[:, None, :, :]
        squares = np.square(delta)
        dist = np.sqrt(squares[..., 0] + squares[..., 1])
        penetration = np.logaddexp(0.0, -(dist - 2 * AGENT_SIZE) / CONTACT_MARGIN) \
            * CONTACT_MARGIN
        # an agent does not push itself: its delta is 0, and dividing by 1 instead of its
        # distance 0 makes that force exactly 0 (0/0 would be NaN)
        pair_force = CONTACT_FORCE * delta / (dist + self._eye)[..., None] \
            * penetration[..., None]
        # mpe2 adds, for agent i, its action force and then the pair forces j = 0..N-1 in turn
        # (adding the zero diagonal changes nothing), so this sum is bit-for-bit the same.
        force = ACTION_FORCES[actions]
        for j in range(self.N):
            force += pair_force[:, :, j]
        pos += self.agent_vel * DT
        self.agent_vel *= 1 - DAMPING
        self.agent_vel += force * DT  # force / mass, mass 1: the same number
        after = pos[:, :, None, :] - pos[:, None, :, :]
        squares = np.square(after, out=after)
        return np.sqrt(squares[..., 0] + squares[..., 1])

    def _rewards(self, agent_dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-agent rewards ``[K, N]`` (float64) and landmark coverage ``[K]``."""
        to_landmark = self.landmark_pos[:, None, :, :] - self.agent_pos[:, :, None, :]
        squares = np.square(to_landmark, out=to_landmark)
        landmark_dist = np.sqrt(squares[..., 0] + squares[..., 1])
        closest = np.minimum.reduce(landmark_dist, axis=1)          # [K, landmarks]
        global_reward = -np.add.reduce(closest, axis=1)             # [K]
        penalty_on = (not self.curriculum) or self.curriculum_stage >= 1
        if penalty_on:
            collisions = ((agent_dist < 2 * AGENT_SIZE) & self._off_diagonal).sum(axis=2)
            local = -collisions.astype(np.float64)
        else:
            local = np.zeros((self.num_envs, self.N))
        rewards = global_reward[:, None] * (1 - self.local_ratio) + local * self.local_ratio
        covered = (closest < CAPTURE_RADIUS).all(axis=1)
        return rewards, covered

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        actions = self.check_actions(actions, "mpe")
        agent_dist = self._physics(actions.astype(np.intp, copy=False))
        rewards, covered = self._rewards(agent_dist)
        self.t += 1
        truncated = self.t >= self._time_limit
        terminated = covered & ~truncated if self.terminate_on_success \
            else np.zeros(self.num_envs, dtype=bool)
        team = np.add.reduce(rewards, axis=1)
        if self.team_reward == "mean":
            team /= self.N  # what ndarray.mean computes

        final_obs = self._observe()
        final_state = final_obs.reshape(self.num_envs, -1).copy()
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            self.seed_envs(done, reset_seeds)
            self._reset_worlds(done)
            obs = final_obs.copy()
            obs[done] = self._observe()[done]
        else:
            obs = final_obs.copy()
        return StepResult(
            obs=obs, state=obs.reshape(self.num_envs, -1).copy(), avail=self._avail.copy(),
            reward=team.astype(np.float32), terminated=terminated, truncated=truncated,
            final_obs=final_obs, final_state=final_state, final_avail=self._avail.copy(),
            info={"agent_rewards": rewards.astype(np.float32)},
        )

    # --- drawing ------------------------------------------------------------------------------
    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame ``[render_size, render_size, 3]`` uint8 of env ``index``, laid out as
        mpe2 draws it (camera fitted to the entities, y up, landmarks over agents)."""
        size = self.render_size
        positions = np.concatenate([self.agent_pos[index], self.landmark_pos[index]])
        radii = np.array([AGENT_SIZE] * self.N + [LANDMARK_SIZE] * self.N)
        colors = [AGENT_COLOR] * self.N + [LANDMARK_COLOR] * self.N
        cam_range = max(np.abs(positions).max(), 1e-6)
        scale = size / 700  # mpe2 draws on 700 pixels with radius = size * 350
        radii = radii * 350 * scale
        if self.dynamic_rescaling:
            radii = radii * 0.9 * self._cam_range0[index] / cam_range
        centres_x = positions[:, 0] / cam_range * (size // 2) * 0.9 + size // 2
        centres_y = -positions[:, 1] / cam_range * (size // 2) * 0.9 + size // 2
        frame = np.full((size, size, 3), 255, dtype=np.uint8)
        rows, cols = np.mgrid[0:size, 0:size] + 0.5
        for x, y, radius, color in zip(centres_x, centres_y, radii, colors, strict=True):
            dist = np.sqrt((cols - x) ** 2 + (rows - y) ** 2)
            frame[dist <= radius] = color.astype(np.uint8)
            frame[(dist <= radius) & (dist > radius - 1)] = 0  # border
        return frame
