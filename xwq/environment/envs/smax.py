"""SMAX (JaxMARL's StarCraft-like micromanagement in JAX) as a native vectorised env, ``"smax"``.

:class:`SMAXVecEnv` (``REGISTRY_NATIVE_ENV["smax"]``) steps K battles of
``jaxmarl.environments.smax.HeuristicEnemySMAX`` in **one** jitted, vmapped call per step: the
allies are the agents, the enemies follow JaxMARL's built-in heuristic. Install it with
``pip install "xwq[smax]"`` (``jaxmarl==0.2.0``, CPU-only JAX, about 1 GB).

What JaxMARL leaves out, and how it is recovered here:

- **terminal observations**: JaxMARL's ``step`` resets finished envs inside the call, so the last
  observation of an episode is lost. This env calls ``step_env`` (which never resets), keeps its
  output as ``final_obs/final_state/final_avail``, and swaps in a fresh ``reset`` only for the
  envs that ended, inside the same jitted call;
- **won**: there is no flag; a battle is won when every enemy is dead and at least one ally is
  alive (exactly SMAX's condition for its win bonus), read from the units' ``unit_alive``;
- **time limit**: JaxMARL sets ``done`` at ``step >= max_steps`` (evaluated before the step
  counter moves, so its episodes last ``max_steps + 1`` steps) and says nothing about why. Here
  an episode *terminates* when one side is wiped out and is *truncated* (bootstrap through it)
  after ``max_episode_steps`` steps (default ``max_steps`` = 100, JaxMARL's default on every
  map) otherwise;
- info per step: ``battle_won``, ``dead_allies``, ``dead_enemies`` as float32 ``[K]`` arrays
  (for an env whose episode just ended: that episode's last values).

Observations are SMAX's ``unit_list`` features (``[K, n_allies, obs_dim]``), the state is its
``world_state`` (``[K, state_dim]``), masks come from ``get_avail_actions``. SMAX's action
layout differs from SMAC's: 0–3 move, 4 stop (the only action of a dead unit), 5+ attack enemy
``a - 5``. Rewards are SMAX's: damage dealt as a fraction of the enemies' health plus 1 for a
win, so an episode's return tops out near 2 (SMAC's near 20). The allies share one team
reward; ``team_reward: mean`` (the default) gives it as is, ``sum`` multiplies it by n_allies.
``reward_scale`` multiplies every reward (the packaged config uses 10: SMAC's range, as
JaxMARL's QMIX baseline). The world state holds raw positions (0 to the map size) and unit-type
indices; ``normalize_state=True`` (the packaged config's choice) divides them by the map size
and the largest type index, so every state feature lies in [0, 1].

Seeding: ``reset(seed=s)`` gives env k the key ``PRNGKey(s + k)``; every step splits each env's
own key, so an env's episodes do not depend on the others or on K.

Speed on 3m, JAX on one core of a shared 2-core machine (``benchmarks/smax_speed.py``): about
1,300 env steps/s with K = 1, 8,800 with K = 8, 27,000 with K = 32. The first ``reset`` and
``step`` of each (map, K, settings) compile: about 7 + 12 s on a quiet machine, up to
17 + 62 s (K = 8) under load. Envs built alike (a run's train and test envs, usually) share
one compiled step.

JAX threads: XLA's CPU thread pool ignores ``XLA_FLAGS`` thread limits but inherits the CPU
affinity of the thread that starts it, so the first env built pins that start to ``jax_cores``
of the cores this process may use (``os.sched_getaffinity``) and then restores the caller's
affinity: JAX computes on those cores, torch keeps the rest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from xwq.environment.interfaces import EnvSpec, NativeVecEnv, StepResult, per_env_seeds
from xwq.errors import ConfigError
from xwq.registry import REGISTRY_NATIVE_ENV, require_choice

#: JaxMARL 0.2.0's SMAX scenarios (``jaxmarl.environments.smax.map_name_to_scenario``)
SMAX_MAPS = ("3m", "2s3z", "25m", "3s5z", "8m", "5m_vs_6m", "10m_vs_11m", "27m_vs_30m",
             "3s5z_vs_3s6z", "3s_vs_5z", "6h_vs_8z", "smacv2_5_units", "smacv2_10_units",
             "smacv2_20_units")
INSTALL = ('pip install "xwq[smax]"   (or: pip install jaxmarl==0.2.0; CPU-only JAX, '
           'about 1 GB)')
DEFAULT_MAX_STEPS = 100  # JaxMARL's SMAX default, the same on every map

_jax_started_on: tuple[int, ...] | None = None  # cores JAX's CPU thread pool was started on
_COMPILED: dict[tuple, tuple] = {}  # (map, K, settings) -> (SMAX env, reset_all, step_all)


def import_smax() -> Any:
    """``jaxmarl.environments.smax``, or an ImportError that says what to install."""
    try:
        import jax  # noqa: F401
        from jaxmarl.environments import smax
    except ImportError as error:
        raise ImportError(f"env 'smax' needs JaxMARL ({error}); install it with: {INSTALL}"
                          ) from error
    return smax


def check_smax_env_id(env_id: str) -> None:
    """Fail before anything is built on an unknown map or a missing jaxmarl."""
    require_choice("env_id", env_id, SMAX_MAPS, where=" for env 'smax' (a SMAX map)")
    import_smax()


def start_jax_on_cores(jax_cores: int | None) -> tuple[int, ...]:
    """Start JAX's CPU backend with its threads pinned to ``jax_cores`` of the allowed cores.

    Threads inherit the affinity of the thread that creates them, so the calling thread is
    pinned while the backend starts, then given its affinity back. Only the first call has an
    effect (JAX starts once per process); later calls return the cores it started on.
    ``jax_cores=None`` leaves the affinity alone (JAX uses every allowed core).
    """
    global _jax_started_on
    import jax

    if _jax_started_on is not None:
        return _jax_started_on
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if jax_cores is None or not allowed or jax_cores >= len(allowed):
        jax.devices("cpu")
        _jax_started_on = tuple(allowed)
        return _jax_started_on
    # the last cores: core 0 is where the OS and most other processes start
    cores = allowed[-jax_cores:]
    os.sched_setaffinity(0, cores)
    try:
        jax.devices("cpu")
    finally:
        os.sched_setaffinity(0, allowed)
    _jax_started_on = tuple(cores)
    return _jax_started_on


def _raw_key(seed: int) -> np.ndarray:
    """The key ``jax.random.PRNGKey(seed)`` builds for a seed below 2**64 (threefry: the high
    and low 32 bits), made in numpy: no JAX call per env."""
    seed = int(seed) % 2**64
    return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)


@REGISTRY_NATIVE_ENV.register("smax")
class SMAXVecEnv(NativeVecEnv):
    """K SMAX battles against the heuristic enemy, stepped in one jitted, vmapped call.

    Args:
        env_id: a SMAX map (:data:`SMAX_MAPS`), e.g. ``"3m"``.
        num_envs: K.
        team_reward: ``"mean"`` (SMAX's team reward) or ``"sum"`` over the allies.
        max_steps: SMAX's episode length (default 100).
        max_episode_steps: the config key of that name; overrides ``max_steps`` when given.
        jax_cores: how many of the allowed cores JAX's threads run on (``None``: all); only the
            first env of a process decides (see :func:`start_jax_on_cores`).
        enemy_shoots, attack_mode: JaxMARL's heuristic enemy options.
        reward_scale: multiplies the team reward (> 0).
        normalize_state: scale the world state's positions and unit types to [0, 1].
        **smax_kwargs: passed on to JaxMARL's ``SMAX`` (e.g. ``won_battle_bonus``,
            ``walls_cause_death``, ``see_enemy_actions``, ``observation_type``).

    Shapes: obs ``[K, n_allies, obs_dim]`` float32, state ``[K, state_dim]`` float32, avail
    ``[K, n_allies, n_enemies + 5]`` bool, actions ``[K, n_allies]`` int,
    reward/terminated/truncated ``[K]``.
    """

    env_ids = SMAX_MAPS

    def __init__(self, env_id: str, num_envs: int, team_reward: str = "mean", *,
                 max_steps: int = DEFAULT_MAX_STEPS, max_episode_steps: int | None = None,
                 jax_cores: int | None = 1, enemy_shoots: bool = True,
                 attack_mode: str = "closest", reward_scale: float = 1.0,
                 normalize_state: bool = False, **smax_kwargs: Any) -> None:
        check_smax_env_id(env_id)
        if num_envs < 1:
            raise ConfigError(f"num_envs={num_envs} must be at least 1")
        if team_reward not in ("mean", "sum"):
            raise ConfigError(f"team_reward={team_reward!r}: choose 'mean' or 'sum'")
        limit = int(max_episode_steps or max_steps)
        if limit < 1:
            raise ConfigError(f"env 'smax': the time limit must be >= 1 step, got {limit}")
        if not reward_scale > 0:
            raise ConfigError(f"env_kwargs reward_scale={reward_scale!r}: use a number > 0 "
                              "(10 gives SMAX's returns SMAC's range, about 20)")
        if jax_cores is not None and jax_cores < 1:
            raise ConfigError(f"env_kwargs jax_cores={jax_cores!r}: use None or an int >= 1")
        if smax_kwargs.get("action_type", "discrete") != "discrete":
            raise ConfigError("env 'smax': only action_type 'discrete' works with value "
                             "decomposition methods")
        smax = import_smax()
        start_jax_on_cores(jax_cores)
        import jax
        import jax.numpy as jnp

        self.env_id = env_id
        self.num_envs = int(num_envs)
        self.team_reward = team_reward
        self.time_limit = limit
        self.reward_scale = float(reward_scale)
        self.normalize_state = bool(normalize_state)
        # envs alike (the train and test envs of a run, usually) share one compiled step
        cache_key = (env_id, self.num_envs, limit, team_reward, enemy_shoots, attack_mode,
                     self.reward_scale, self.normalize_state,
                     repr(sorted(smax_kwargs.items())))
        cached = _COMPILED.get(cache_key)
        if cached is None:
            try:
                env = smax.HeuristicEnemySMAX(
                    scenario=smax.map_name_to_scenario(env_id), max_steps=limit,
                    enemy_shoots=enemy_shoots, attack_mode=attack_mode, **smax_kwargs)
            except TypeError as error:
                raise ConfigError(f"env 'smax', env_id {env_id!r}: bad env_kwargs "
                                f"{smax_kwargs}: {error}") from None
            cached = _COMPILED[cache_key] = (env, *self._build(jax, jnp, env, tuple(env.agents)))
        self._env, self._reset_all, self._step_all = cached
        env = self._env
        self.n_allies = env.num_allies
        self.n_enemies = env.num_enemies
        agents = tuple(env.agents)
        n_actions = int(env.action_spaces[agents[0]].n)
        obs_dim = int(env.observation_spaces[agents[0]].shape[0])
        state_dim = int(env.state_size)
        self.spec = EnvSpec(agents=agents, obs_dim=obs_dim, state_dim=state_dim,
                            n_actions=n_actions, max_episode_steps=limit)
        self.rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._jax = jax
        self._keys = None
        self._states = None
        self._t = None

    # --- the jitted core ----------------------------------------------------------------------
    def _build(self, jax: Any, jnp: Any, env: Any, agents: tuple[str, ...]) -> tuple:
        """The jitted ``reset_all(keys)`` and ``step_all(keys, states, t, actions)``."""
        n_allies, limit = env.num_allies, self.time_limit
        reduce_sum = self.team_reward == "sum"
        # world state: per unit [health, x, y, cooldown, one-hot type], then teams and types;
        # normalize_state divides x and y (0..map size) by the map size and the unit types by
        # the largest type index, so every feature lies in [0, 1] as in SMAC's state
        n_units, n_features = env.num_allies + env.num_enemies, len(env.own_features)
        scale = np.ones(n_units * n_features + 2 * n_units, dtype=np.float32)
        if self.normalize_state:
            for u in range(n_units):
                scale[u * n_features + 1] = 1.0 / env.map_width
                scale[u * n_features + 2] = 1.0 / env.map_height
            scale[n_units * n_features + n_units:] = 1.0 / max(1, len(env.unit_type_names) - 1)
        state_scale = jnp.asarray(scale)
        reward_scale = self.reward_scale

        def arrays(obs: dict, state: Any) -> tuple:
            avail = env.get_avail_actions(state)
            return (jnp.stack([obs[a] for a in agents]).astype(jnp.float32),
                    obs["world_state"].astype(jnp.float32) * state_scale,
                    jnp.stack([avail[a] for a in agents]).astype(bool))

        def strong(tree: Any) -> Any:
            # reset's integers are weak-typed; step's are not: without this cast the jitted
            # step would compile twice (once per typing of its state argument)
            return jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), tree)

        def reset_one(key: Any) -> tuple:
            obs, state = env.reset(key)
            return strong(state), arrays(obs, state)

        def step_one(key: Any, state: Any, t: Any, actions: Any, seed_key: Any,
                     seeded: Any) -> tuple:
            key, step_key, reset_key = jax.random.split(key, 3)
            # an env given a reset seed starts its next battle (and its key stream) from it
            reset_key = jnp.where(seeded, seed_key, reset_key)
            key = jnp.where(seeded, jax.random.fold_in(seed_key, 1), key)
            obs, state, rewards, _, _ = env.step_env(
                step_key, state, {a: actions[i] for i, a in enumerate(agents)})
            alive = state.state.unit_alive
            allies_alive, enemies_alive = alive[:n_allies].any(), alive[n_allies:].any()
            terminated = ~allies_alive | ~enemies_alive
            won = allies_alive & ~enemies_alive
            t = t + 1
            truncated = (t >= limit) & ~terminated
            done = terminated | truncated
            final = arrays(obs, state)
            fresh_state, first = reset_one(reset_key)
            pick = lambda new, old: jnp.where(done, new, old)  # noqa: E731
            state = jax.tree.map(pick, fresh_state, strong(state))
            current = jax.tree.map(pick, first, final)
            team = jnp.stack([rewards[a] for a in agents])
            reward = (team.sum() if reduce_sum else team.mean()) * reward_scale
            stats = (won.astype(jnp.float32),
                     (n_allies - alive[:n_allies].sum()).astype(jnp.float32),
                     (alive.shape[0] - n_allies - alive[n_allies:].sum()).astype(jnp.float32))
            return (key, state, jnp.where(done, 0, t), current, final,
                    reward.astype(jnp.float32), terminated, truncated, stats)

        def reset_all(keys: Any) -> tuple:
            keys, reset_keys = jnp.split(jax.vmap(lambda k: jax.random.split(k, 2))(keys),
                                         2, axis=1)
            states, first = jax.vmap(reset_one)(reset_keys[:, 0])
            return keys[:, 0], states, first

        return jax.jit(reset_all), jax.jit(jax.vmap(step_one))

    # --- API ------------------------------------------------------------------------------
    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start every env: an int s gives env k the key ``PRNGKey(s + k)``, a sequence gives
        env k ``PRNGKey(seed[k])``; None (or a None entry) continues that env's own key stream
        (fresh entropy the first time)."""
        jax = self._jax
        seeds = per_env_seeds(seed, self.num_envs)
        if self._keys is None:
            fresh = np.random.default_rng().integers(2**31, size=self.num_envs)
            seeds = [int(fresh[k]) if s is None else s for k, s in enumerate(seeds)]
        if any(s is not None for s in seeds):
            keys = np.array(self._keys) if self._keys is not None else \
                np.zeros((self.num_envs, 2), dtype=np.uint32)
            for k, s in enumerate(seeds):
                if s is not None:
                    keys[k] = _raw_key(s)
            self._keys = jax.numpy.asarray(keys)
        self._keys, self._states, first = self._reset_all(self._keys)
        self._t = jax.numpy.zeros(self.num_envs, dtype=jax.numpy.int32)
        obs, state, avail = (np.array(x) for x in jax.device_get(first))
        return obs, state, avail

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        """One step of every battle; a battle that ends restarts at once, from
        ``PRNGKey(reset_seeds[k])`` when given (else from its own key stream)."""
        if self._states is None:
            raise RuntimeError("env 'smax': call reset() before step()")
        actions = self.check_actions(actions, "smax")
        seed_keys = np.zeros((self.num_envs, 2), dtype=np.uint32)
        seeded = np.zeros(self.num_envs, dtype=bool)
        for k, s in enumerate(reset_seeds if reset_seeds is not None else ()):
            if s is not None:
                seed_keys[k], seeded[k] = _raw_key(s), True
        jnp = self._jax.numpy
        out = self._step_all(self._keys, self._states, self._t,
                             jnp.asarray(actions, dtype=jnp.int32), jnp.asarray(seed_keys),
                             jnp.asarray(seeded))
        self._keys, self._states, self._t = out[0], out[1], out[2]
        # one transfer; np.array copies (JAX's host buffers are read-only)
        current, final, reward, terminated, truncated, stats = self._jax.device_get(out[3:])
        obs, state, avail = (np.array(x) for x in current)
        final_obs, final_state, final_avail = (np.array(x) for x in final)
        won, dead_allies, dead_enemies = (np.array(x) for x in stats)
        return StepResult(
            obs=obs, state=state, avail=avail, reward=np.array(reward),
            terminated=np.array(terminated), truncated=np.array(truncated),
            final_obs=final_obs, final_state=final_state, final_avail=final_avail,
            info={"battle_won": won, "dead_allies": dead_allies, "dead_enemies": dead_enemies})

    @classmethod
    def check_env_id(cls, env_id: str) -> None:
        check_smax_env_id(env_id)
