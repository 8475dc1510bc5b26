"""The two environment interfaces: the dict API users implement, the array API xwq learns from.

**Dict API**, one episode of one env: :class:`MultiAgentEnv` (like XuanCe's RawMultiAgentEnv),
whose observations, rewards and flags are dicts keyed by agent name. Users subclass it (or bring
a PettingZoo ``ParallelEnv``). Dicts keyed by agent name exist only at this boundary; the
adapters (:mod:`xwq.environment.adapters`) turn them into arrays, and everything past them is
batched arrays.

**Array API**, K independent episodes stepped together: :class:`VecEnv`, with the sizes in
:class:`EnvSpec`. Every vectorised env — the serial and subprocess wrappers around dict-API envs
(:mod:`xwq.environment.vector`), and the native numpy envs (:class:`NativeVecEnv`: matrix game,
predator-prey, native MPE) — implements it:

``reset(seed=None) -> (obs, state, avail)``
    obs ``[K, n_agents, obs_dim]`` float32, state ``[K, state_dim]`` float32,
    avail ``[K, n_agents, n_actions]`` bool.
``step(actions, reset_seeds=None) -> StepResult``
    actions ``[K, n_agents]`` int. Envs whose episode ended (terminated or truncated) are reset
    automatically: ``obs/state/avail`` are then the *first* observation of the next episode, and
    ``final_obs/final_state/final_avail`` hold the last observation of the episode that ended
    (for envs that did not end they equal ``obs/state/avail``). The two are never mixed.

Seeding: ``reset(seed=s)`` with an int seeds env k with ``s + k``; with a sequence of K ints,
env k with ``seed[k]``; ``None`` continues each env's own random stream. ``step(actions,
reset_seeds=seeds)`` seeds the autoreset of every env k that ends in this step with
``seeds[k]`` (``None``, the default, continues that env's stream). The agents pass, every step,
the seed of each env's *next* episode (derived from the run seed, the env index and that env's
episode count, :func:`xwq.common.seeding.episode_seed`), so each episode's randomness depends
only on which episode it is, never on how the K envs' episodes interleave in time.

Episode statistics: ``StepResult.info`` maps a name to an array ``[K]`` of float64, the value of
that numeric statistic at each env's current step (for an env that just ended, its final
step's); NaN where an env reports none. A dict-API env reports statistics in the ``info`` dict
its ``step`` returns: a top-level number (``info["battle_won"] = 1.0``), or, PettingZoo style, a
number inside the per-agent dicts (``{agent: {"battle_won": 1.0}}``: averaged over the agents
that report it). Anything else in ``info`` (action masks, arrays, strings) is ignored. xwq keeps,
for each episode, the value of its **last** step that reported it, so a count over the episode
must be reported cumulatively by the env. The names ``return`` and ``length`` are xwq's own
(every episode has them) and are not read from ``info``. Native envs may add other arrays to
``info`` (e.g. native MPE's per-agent rewards ``[K, n_agents]``); only ``[K]`` arrays are
statistics.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from gymnasium import spaces

from xwq.errors import ConfigError
from xwq.registry import closest


# --- the dict API ---------------------------------------------------------------------------
class MultiAgentEnv:
    """A cooperative multi-agent environment with a dict API.

    Subclasses set, in ``__init__``:

    - ``agents``: list of agent names (fixed order; ``num_agents`` is its length — assigning
      ``self.num_agents`` as XuanCe envs do is allowed, and checked against ``agents``);
    - ``observation_space`` / ``action_space``: dicts agent -> gymnasium space (Box observations
      of any shape; Discrete actions), or PettingZoo-style methods ``observation_space(agent)``;
    - ``state_space``: a Box for the global state (omit it, and ``state()``, and xwq uses the
      agents' flattened observations, concatenated in ``agents`` order);
    - ``max_episode_steps``: the time limit (xwq truncates there if the env does not).

    and implement ``reset``, ``step`` and, optionally, ``state``, ``avail_actions``, ``render``
    and ``close``. ``reset(seed)`` returns ``(obs, info)``; ``step`` returns ``(obs, rewards,
    terminated, truncated, info)``, the first four dicts keyed by agent (a reward is one number:
    float, numpy scalar or one-value array); ``info`` may be any dict, and its top-level numbers
    are episode statistics (``info["battle_won"] = 1.0``; module docstring): xwq logs them and
    can rank models by one (config ``eval_metric``). ``avail_actions()`` may return None, or
    leave an agent out: every action of that agent is then available. A ``reset()`` without a
    ``seed`` parameter is seeded through ``self.seed(seed)`` if the env has one, else not at all
    (with a warning: runs are then not reproducible). Run :func:`xwq.check_env` on an instance
    to have every one of these checked with a message that says what to fix.
    """

    agents: list[str]
    observation_space: dict[str, spaces.Space]
    action_space: dict[str, spaces.Space]
    state_space: spaces.Box | None = None
    max_episode_steps: int | None = None
    #: what ``self.num_agents = n`` assigned (None if nothing): checked against ``agents``
    declared_num_agents: int | None = None

    @property
    def num_agents(self) -> int:
        """``len(agents)`` (before ``agents`` is set: the value assigned to ``num_agents``)."""
        if getattr(self, "agents", None) is None and self.declared_num_agents is not None:
            return self.declared_num_agents
        return len(self.agents)

    @num_agents.setter
    def num_agents(self, value: int) -> None:
        self.declared_num_agents = value

    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        raise NotImplementedError

    def state(self) -> np.ndarray:
        """The global state ``[state_dim]``. Not overriding it is fine: xwq then uses the
        agents' flattened observations, concatenated in ``agents`` order (zeros for agents that
        have left), and ``state_space`` must stay None."""
        raise NotImplementedError(
            f"{type(self).__name__} has no state(); xwq concatenates the observations instead")

    def avail_actions(self) -> dict[str, np.ndarray] | None:
        """Bool mask per agent over its actions; by default every action is available (so does
        returning None, or leaving an agent out)."""
        table = self.action_space
        return {a: np.ones((table(a) if callable(table) else table[a]).n, dtype=bool)
                for a in self.agents}

    def render(self) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass


# --- the array API --------------------------------------------------------------------------
#: the storage dtypes an env may declare for observations and state: integer and bool data stay
#: in their own dtype (a uint8 image stays uint8: 4x less memory than float32), anything else
#: is float32
STORAGE_DTYPES = ("float32", "bool", "uint8", "int8", "uint16", "int16", "int32")


def storage_dtype(dtypes: Iterable[Any]) -> str:
    """The dtype observations (or a state) of these space dtypes are stored in: their common
    integer or bool dtype when they are all integer or bool (and it is one of
    :data:`STORAGE_DTYPES`), else float32.

    >>> storage_dtype([np.uint8, np.uint8]), storage_dtype([np.uint8, np.float32])
    ('uint8', 'float32')
    """
    found = [np.dtype(d) for d in dtypes]
    if found and all(d.kind in "biu" for d in found):
        common = np.result_type(*found).name
        if common in STORAGE_DTYPES:
            return common
    return "float32"


def compact_bounds(low: Any, high: Any, shape: tuple[int, ...]
                   ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-feature bounds broadcastable to ``shape`` in their smallest form: None, None when
    every feature is unbounded (-inf, inf); one value per axis of length 1 where all entries
    along it agree; float64."""
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), shape)
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), shape)
    if np.all(np.isneginf(low)) and np.all(np.isposinf(high)):
        return None, None
    for axis in range(len(shape)):  # the leading axis first: per agent, then per feature
        first = (slice(None),) * axis + (slice(0, 1),)
        if np.array_equal(low, np.broadcast_to(low[first], low.shape)) and \
                np.array_equal(high, np.broadcast_to(high[first], high.shape)):
            low, high = low[first], high[first]
    return np.array(low, copy=True), np.array(high, copy=True)


@dataclass(frozen=True, eq=False)
class EnvSpec:
    """Sizes, storage dtypes and value bounds of the arrays a vectorised env exchanges.

    Attributes:
        agents: agent names, in the order of the ``n_agents`` axis.
        obs_dim: length of each agent's (flattened, padded) observation.
        state_dim: length of the global state.
        n_actions: number of discrete actions (the largest over agents; the rest are masked).
        max_episode_steps: time limit T; episodes never run longer.
        obs_dtype, state_dtype: the dtype the env gives observations and the state in (one of
            :data:`STORAGE_DTYPES`; ``float32`` unless the spaces are integer or bool, see
            :func:`storage_dtype`); the replay buffer stores them so, and they become float only
            on their way into the networks.
        obs_low, obs_high: the observation space's bounds, broadcastable to
            ``[n_agents, obs_dim]`` (padded features: -inf, inf); None: unbounded. Stored in the
            smallest such form (:func:`compact_bounds`).
        state_low, state_high: the state space's bounds, broadcastable to ``[state_dim]``.
        state_source: ``env`` (the env's ``state()``) or ``observations``: the state is the
            agents' observations, concatenated (``state_dim = n_agents * obs_dim``), built from
            them where it is needed and never stored (:meth:`with_state_source`).

    Two specs are equal when every field is, bounds compared value by value.
    """

    agents: tuple[str, ...]
    obs_dim: int
    state_dim: int
    n_actions: int
    max_episode_steps: int
    obs_dtype: str = "float32"
    state_dtype: str = "float32"
    obs_low: np.ndarray | None = None
    obs_high: np.ndarray | None = None
    state_low: np.ndarray | None = None
    state_high: np.ndarray | None = None
    state_source: str = "env"

    def __post_init__(self) -> None:
        for name in ("obs_dtype", "state_dtype"):
            value = np.dtype(getattr(self, name)).name
            if value not in STORAGE_DTYPES:
                raise ValueError(f"EnvSpec.{name} = {value!r}: choose one of {STORAGE_DTYPES}")
            object.__setattr__(self, name, value)
        if self.state_source not in ("env", "observations"):
            raise ValueError(f"EnvSpec.state_source = {self.state_source!r}: choose 'env' or "
                             "'observations'")
        for what, shape in (("obs", (self.n_agents, self.obs_dim)),
                            ("state", (self.state_dim,))):
            low, high = getattr(self, f"{what}_low"), getattr(self, f"{what}_high")
            if low is None and high is None:
                continue
            try:
                low, high = compact_bounds(-np.inf if low is None else low,
                                           np.inf if high is None else high, shape)
            except ValueError:
                raise ValueError(f"EnvSpec.{what}_low/{what}_high must broadcast to "
                                 f"{list(shape)}") from None
            object.__setattr__(self, f"{what}_low", low)
            object.__setattr__(self, f"{what}_high", high)

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Observation bounds ``[n_agents, obs_dim]`` each (read-only views; ±inf: none)."""
        shape = (self.n_agents, self.obs_dim)
        return _bounds(self.obs_low, self.obs_high, shape)

    def state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """State bounds ``[state_dim]`` each (read-only views; ±inf: none)."""
        return _bounds(self.state_low, self.state_high, (self.state_dim,))

    def with_state_source(self, source: str) -> EnvSpec:
        """This spec with the state taken from ``source``: ``env`` as the env gives it, or
        ``observations``: the agents' observations concatenated, ``[n_agents * obs_dim]``, in
        the observations' dtype and bounds (config key ``state_source``)."""
        if source == self.state_source:
            return self
        if source != "observations" or self.state_source != "env":
            raise ValueError(f"with_state_source({source!r}) of a spec whose state source is "
                             f"{self.state_source!r}")
        low, high = self.obs_bounds()
        return replace(self, state_dim=self.n_agents * self.obs_dim,
                       state_dtype=self.obs_dtype, state_low=low.reshape(-1),
                       state_high=high.reshape(-1), state_source="observations")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnvSpec):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]  # bounds are arrays

    def to_dict(self) -> dict:
        """The sizes and dtypes, and each bounds as the [lowest, highest] finite value over the
        features (None: unbounded): a summary to print, not the arrays."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if not f.name.endswith(("_low", "_high"))}
        out["agents"] = list(self.agents)
        for what, (low, high) in (("obs", self.obs_bounds()), ("state", self.state_bounds())):
            finite = np.isfinite(low) & np.isfinite(high)
            out[f"{what}_range"] = ([float(low[finite].min()), float(high[finite].max())]
                                    if finite.any() else None)
        return out


def _bounds(low: np.ndarray | None, high: np.ndarray | None, shape: tuple[int, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    return (np.broadcast_to(-np.inf if low is None else low, shape),
            np.broadcast_to(np.inf if high is None else high, shape))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (a is None) == (b is None) and np.array_equal(a, b)
    return a == b


@dataclass
class StepResult:
    """What one step of K envs returns (see the module docstring for the autoreset rule).

    Shapes: obs/final_obs ``[K, n_agents, obs_dim]``, state/final_state ``[K, state_dim]``,
    avail/final_avail ``[K, n_agents, n_actions]``, reward/terminated/truncated ``[K]``.
    ``reward`` is the team reward (float32); ``terminated`` is a true end, ``truncated`` a time
    limit (bootstrap through it). ``info``: statistic name -> ``[K]`` float64 values at this
    step, NaN where an env reports none (module docstring).
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
    info: dict[str, np.ndarray]

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class VecEnv:
    """Base class of every vectorised env. Subclasses set ``spec`` and ``num_envs``."""

    spec: EnvSpec
    num_envs: int

    def reset(self, seed: int | Sequence[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start a new episode in every env (seeding: module docstring)."""
        raise NotImplementedError

    def step(self, actions: np.ndarray, reset_seeds: Sequence[int] | None = None
             ) -> StepResult:
        """Step every env; an env whose episode ends restarts at once, seeded with
        ``reset_seeds[k]`` when given (module docstring)."""
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

    #: one numpy Generator per env, set by the subclass; :meth:`seed_envs` replaces them
    rngs: list[np.random.Generator]

    @staticmethod
    def make_rng(seed: int) -> np.random.Generator:
        """The generator an env seeded with ``seed`` draws from (override to match a reference
        implementation's seeding, as native MPE does)."""
        return np.random.default_rng(seed)

    def seed_envs(self, envs: Iterable[int], seeds: Sequence[int | None] | None) -> None:
        """Give each env k in ``envs`` a generator seeded with ``seeds[k]`` (None: keep its
        stream); called before those envs draw their next episode."""
        if seeds is None:
            return
        for k in envs:
            if seeds[k] is not None:
                self.rngs[k] = self.make_rng(int(seeds[k]))

    def check_actions(self, actions: Any, name: str) -> np.ndarray:
        """``actions`` as an int array ``[num_envs, n_agents]`` with values in
        ``0 .. n_actions - 1``, or a ValueError naming env ``name`` and what was wrong."""
        actions = np.asarray(actions)
        expected = (self.num_envs, self.spec.n_agents)
        if actions.shape != expected:
            raise ValueError(f"env {name!r}: actions must have shape [num_envs, n_agents] = "
                             f"{expected}, got {actions.shape}")
        if actions.dtype.kind not in "iu":
            raise ValueError(f"env {name!r}: actions must be integers, got {actions.dtype}")
        if np.minimum.reduce(actions, axis=None) < 0 \
                or np.maximum.reduce(actions, axis=None) >= self.spec.n_actions:
            n = self.spec.n_actions
            raise ValueError(f"env {name!r}: actions out of range: each must lie in 0..{n - 1} "
                             f"= [0, {n}), got values in [{actions.min()}, {actions.max()}]")
        return actions


def per_env_seeds(seed: int | Sequence[int] | None, num_envs: int) -> list[int | None]:
    """The seed of each of ``num_envs`` envs for ``reset(seed)``: an int s gives env k
    ``s + k``, a sequence gives env k its k-th entry, None gives None (continue)."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + k for k in range(num_envs)]
    seeds = [None if s is None else int(s) for s in seed]
    if len(seeds) != num_envs:
        raise ValueError(f"reset(seed=...): got {len(seeds)} seeds for {num_envs} envs")
    return seeds


def check_env_kwargs(factory: Callable[..., Any], env_name: str, env_id: str, env_kwargs: dict,
                     positional: int = 1) -> None:
    """A ConfigError naming the ``env_kwargs`` keys ``factory`` does not take (and the ones it
    does), before it is called; factories that take ``**kwargs`` check their own."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: let the call speak
        return
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    named = [p.name for p in parameters[positional:]
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(env_kwargs) - set(named))
    if unknown:
        hint = closest(unknown[0], named)
        raise ConfigError(
            f"config key 'env_kwargs': env '{env_name}', env_id '{env_id}' takes no "
            f"{', '.join(repr(k) for k in unknown)}; it takes {sorted(named)}.{hint}")
