"""Refusing a training run that could make no gradient update, before it starts.

Updates need a batch of ``batch_size`` finished episodes in the buffer, ``start_training`` env
steps collected, and then ``training_frequency`` env steps (or episodes ended, with
``training_unit: episodes``) per update (``MARLAgents._learn``).
With continuous collection (:mod:`xwq.agents.rollout`) every one of the K = ``parallels`` envs
steps once per vectorised step, and training stops after ``ceil(running_steps / K)`` of them.

:func:`check_training_budget` refuses, with a :class:`~xwq.errors.ConfigError` naming the keys to
change and values that work, every run that is certain to make no update: no steps, a batch
larger than the buffer, ``start_training`` past the budget, or too few env steps even if every
episode lasted one step. Once the env's time limit is known it also counts the updates the run
is sure to make when every episode lasts that long; when that count is zero it warns (with the
same suggestions) instead of refusing, since many envs end their episodes well before the
limit (a SMAC battle, a predator-prey round with every prey caught).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from xwq.errors import ConfigError

logger = logging.getLogger(__name__)


def guaranteed_updates(running_steps: int, parallels: int, batch_size: int,
                       start_training: int, training_frequency: int,
                       max_episode_steps: int, training_unit: str = "steps") -> int:
    """The gradient updates a run makes at the least, when every episode lasts
    ``max_episode_steps`` env steps (a buffer of at least ``batch_size`` episodes assumed);
    ``training_frequency`` counts env steps or, with ``training_unit="episodes"``, episodes."""
    K, T = parallels, max_episode_steps
    last = math.ceil(running_steps / K)  # vectorised steps the run makes
    # the first vectorised step after which K * (v // T) >= batch_size episodes have ended
    # and v * K >= start_training env steps are collected: updates are due from there on
    first = max(T * math.ceil(batch_size / K), math.ceil(start_training / K), 1)
    if first > last:
        return 0
    return _work(K, T, first, last, training_unit) // training_frequency


def _work(K: int, T: int, first: int, last: int, unit: str) -> int:
    """What ``training_frequency`` counts over vectorised steps ``first..last``: env steps, or
    the episodes (of T steps, in K envs) that end there."""
    if unit == "episodes":
        return K * (last // T - (first - 1) // T)
    return (last - first + 1) * K


def check_training_budget(config: Any, max_episode_steps: int | None = None) -> None:
    """Raise ConfigError if a training run of ``config`` could make no gradient update.

    Args:
        config: the resolved config (``running_steps``, ``parallels``, ``batch_size``,
            ``buffer_size``, ``start_training``, ``training_frequency``).
        max_episode_steps: the env's time limit T; None before the envs exist (then only
            the certain cases are refused, as if episodes could last one step).
    """
    steps, K, batch = config.running_steps, config.parallels, config.batch_size
    T = max_episode_steps or 1
    if steps <= 0:
        raise ConfigError(
            f"config key 'running_steps' = {steps}: training would collect nothing and make no "
            f"gradient update; set running_steps to the env steps to train (e.g. "
            f"{_enough_steps(config, T)})")
    if batch > config.buffer_size:
        raise ConfigError(
            f"config key 'batch_size' = {batch} is larger than 'buffer_size' = "
            f"{config.buffer_size}: the buffer never holds a batch, so no gradient update would "
            f"be made; lower batch_size to at most {config.buffer_size} or raise buffer_size to "
            f"at least {batch}")
    if config.start_training >= steps:
        raise ConfigError(
            f"config key 'start_training' = {config.start_training} is not below "
            f"'running_steps' = {steps}: updates would start only after training ends; lower "
            f"start_training (e.g. 0) or raise running_steps to at least "
            f"{_enough_steps(config, T)}")
    if guaranteed_updates(steps, K, batch, config.start_training, config.training_frequency,
                          1, config.training_unit) == 0:
        raise ConfigError("this run would make no gradient update: "
                          + _no_update_reason(config, 1, "every episode lasts 1 env step (the "
                                                         "shortest)"))
    if max_episode_steps and guaranteed_updates(steps, K, batch, config.start_training,
                                                config.training_frequency, T,
                                                config.training_unit) == 0:
        logger.warning(
            "this run may make no gradient update: %s. It will update only if episodes end "
            "well before their time limit", _no_update_reason(
                config, T, f"every episode lasts {T} env steps (its time limit)"))


def _no_update_reason(config: Any, T: int, length: str) -> str:
    """Why a run with episodes of ``T`` env steps makes no update, and what to change."""
    steps, K, batch = config.running_steps, config.parallels, config.batch_size
    fixes = [f"raise 'running_steps' to at least {_enough_steps(config, T)}"]
    last = math.ceil(steps / K)
    episodes = K * (last // T)
    if episodes < batch:
        reason = (f"{steps} env steps in {K} parallel envs end only {episodes} episodes when "
                  f"{length}, fewer than 'batch_size' = {batch}")
        largest, key = _largest_batch(config, T), "batch_size"
    else:
        first = _first_update_step(config, T)
        unit = "episodes" if config.training_unit == "episodes" else "env steps"
        reason = (f"when {length}, updates can start at env step {first * K} (a first batch of "
                  f"{batch} episodes, and 'start_training' = {config.start_training}), which "
                  f"leaves {_work(K, T, first, last, config.training_unit)} {unit}, fewer than "
                  f"'training_frequency' = {config.training_frequency} per update")
        largest, key = _largest_frequency(config, T), "training_frequency"
    if largest:
        fixes.append(f"lower '{key}' to at most {largest}")
    return f"{reason}. To train, " + "; or ".join(fixes)


def _first_update_step(config: Any, T: int) -> int:
    """The vectorised step from which updates are due at the latest (episodes of T steps)."""
    K = config.parallels
    return max(T * math.ceil(config.batch_size / K), math.ceil(config.start_training / K), 1)


def _enough_steps(config: Any, T: int) -> int:
    """The smallest running_steps (a multiple of parallels) that guarantees one update."""
    K = config.parallels
    first = _first_update_step(config, T)
    if config.training_unit == "episodes":  # the vectorised step that ends enough episodes
        last = T * ((first - 1) // T + math.ceil(config.training_frequency / K))
    else:
        last = first - 1 + math.ceil(config.training_frequency / K)
    return max(last, first, math.floor(config.start_training / K) + 1) * K


def _largest_batch(config: Any, T: int) -> int:
    """The largest batch_size (0 if none) with which the run is sure to make an update."""
    return next((b for b in range(config.batch_size - 1, 0, -1)
                 if guaranteed_updates(config.running_steps, config.parallels, b,
                                       config.start_training, config.training_frequency, T,
                                       config.training_unit)),
                0)


def _largest_frequency(config: Any, T: int) -> int:
    """The largest training_frequency (0 if none) with which the run is sure to update."""
    K = config.parallels
    last = math.ceil(config.running_steps / K)
    first = _first_update_step(config, T)
    return _work(K, T, first, last, config.training_unit) if first <= last else 0
