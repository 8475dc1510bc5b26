"""Building vectorised environments from a config: ``make_envs`` and ``register_env``.

``make_envs(config)`` returns a :class:`VecEnv` (shape contract in
:mod:`xwq.environment.interfaces`): the native env of ``REGISTRY_NATIVE_ENV`` when there is one
and ``vectorize`` allows it, else K :class:`ArrayEnv` of ``REGISTRY_ENV[env_name]`` stepped
serially or in subprocesses (:mod:`xwq.environment.vector`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from xwq.environment.adapters.array_env import ArrayEnv, as_multi_agent_env
from xwq.environment.interfaces import VecEnv, check_env_kwargs
from xwq.environment.vector import SerialVecEnv, SubprocVecEnv
from xwq.errors import ConfigError, EnvMismatchError, UsageError
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV


def register_env(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory(env_id, **env_kwargs)`` under env ``name``.

    The factory returns an :class:`xwq.MultiAgentEnv` or any PettingZoo ``ParallelEnv``.
    A ``MultiAgentEnv`` subclass whose ``__init__`` takes ``(env_id, **kwargs)`` works as its own
    factory. Equivalent to ``REGISTRY_ENV[name] = factory``.
    """
    if not callable(factory):
        raise UsageError(f"register_env({name!r}, ...): the factory must be callable, "
                         f"got {type(factory).__name__}")
    REGISTRY_ENV[name] = factory


def _build_array_env(name: str, env_id: str, env_kwargs: dict, team_reward: str,
                     max_episode_steps: int | None, use_state: bool = True) -> ArrayEnv:
    factory = REGISTRY_ENV[name]
    check_env_kwargs(factory, name, env_id, env_kwargs)
    try:
        env = factory(env_id, **env_kwargs)
    except Exception as error:  # the user's factory: keep its error, say which env it built
        if hasattr(error, "add_note"):  # Python 3.11+
            error.add_note(f"(xwq: building env '{name}' with env_id {env_id!r} and env_kwargs "
                           f"{env_kwargs})")
        raise
    try:
        return ArrayEnv(as_multi_agent_env(env, max_episode_steps), team_reward=team_reward,
                        use_state=use_state)
    except EnvMismatchError as error:  # say which env, when it does not
        if f"'{name}'" in str(error):
            raise
        raise EnvMismatchError(f"env '{name}' (env_id {env_id!r}): {error}") from None


def _native_class(config: Any) -> type | None:
    if config.vectorize not in ("auto", "native") or config.env_name not in REGISTRY_NATIVE_ENV:
        if config.vectorize == "native":
            raise ConfigError(
                f"config key 'vectorize' = 'native': env '{config.env_name}' has no native "
                f"vectorised implementation (those that do: {sorted(REGISTRY_NATIVE_ENV)}); "
                "use vectorize: serial or subprocess")
        return None
    cls = REGISTRY_NATIVE_ENV[config.env_name]
    if config.vectorize == "native" and config.env_id in cls.env_ids:
        return cls  # its constructor explains any kwargs it does not implement
    if cls.supports(config.env_id, config.env_kwargs):
        return cls
    if config.vectorize == "native":
        raise ConfigError(
            f"config key 'vectorize' = 'native': env '{config.env_name}' has a native version "
            f"only for env_id in {list(cls.env_ids)}, not {config.env_id!r}")
    return None


def make_envs(config: Any, test: bool = False) -> VecEnv:
    """The vectorised env a config describes: ``config.parallels`` envs (with ``test=True``,
    ``test_parallels`` but no more than the ``test_episode`` an evaluation plays), native when
    available and ``vectorize`` allows, else serial or subprocess."""
    num_envs = min(config.test_parallels, config.test_episode) if test else config.parallels
    native = _native_class(config)
    if native is not None:
        kwargs = dict(config.env_kwargs)
        if config.max_episode_steps is not None:
            kwargs["max_episode_steps"] = config.max_episode_steps
        check_env_kwargs(native, config.env_name, config.env_id,
                         {**kwargs, "team_reward": config.team_reward}, positional=2)
        return native(config.env_id, num_envs, team_reward=config.team_reward, **kwargs)
    if config.env_name not in REGISTRY_ENV and config.env_name in REGISTRY_NATIVE_ENV:
        raise ConfigError(
            f"env '{config.env_name}' exists only as a native vectorised env; "
            "set vectorize: auto or native")
    REGISTRY_ENV[config.env_name]  # unknown names fail here, with the list of choices
    factory = functools.partial(_build_array_env, config.env_name, config.env_id,
                                dict(config.env_kwargs), config.team_reward,
                                config.max_episode_steps,
                                # state_source: observations never asks the env for its state
                                config.state_source == "env")
    vec_class = SubprocVecEnv if config.vectorize == "subprocess" else SerialVecEnv
    return vec_class([factory] * num_envs)


def check_env_id(env_name: str, env_id: str) -> None:
    """Fail now, before any env is built, on an ``env_id`` that env ``env_name`` does not have
    (or a missing package its factory needs), where its factory says how to tell: a factory may
    carry a ``check_env_id(env_id)`` attribute that raises. Factories without one are checked
    when they build. A native-only env (in ``REGISTRY_NATIVE_ENV`` alone) is asked the same
    way, through its class."""
    if env_name in REGISTRY_ENV:
        entry = REGISTRY_ENV[env_name]
    elif env_name in REGISTRY_NATIVE_ENV:
        entry = REGISTRY_NATIVE_ENV[env_name]
    else:
        return
    check = getattr(entry, "check_env_id", None)
    if check is not None:
        check(env_id)
