"""ε-greedy over available actions, drawn independently per agent, and its linear schedule."""

from __future__ import annotations

import numpy as np
import torch


def masked_argmax(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """Greedy action over available actions: ``q [..., A]``, ``avail [..., A]`` bool -> ``[...]``.

    Rows with no available action (padding) fall back to every action being allowed.
    """
    allowed = avail | ~avail.any(dim=-1, keepdim=True)
    return q.masked_fill(~allowed, float("-inf")).argmax(dim=-1)


def masked_argmax_numpy(q: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """:func:`masked_argmax` in numpy (the acting loop's: a few µs less per call), the same
    actions: ties and NaN go to the first such index in both."""
    if avail.all():
        return q.argmax(axis=-1)
    allowed = avail | ~avail.any(axis=-1, keepdims=True)
    return np.where(allowed, q, -np.inf).argmax(axis=-1)


class EpsilonSchedule:
    """ε falls linearly from ``start`` to ``end`` over ``decay_steps`` environment steps."""

    def __init__(self, start: float, end: float, decay_steps: int) -> None:
        self.start, self.end, self.decay_steps = start, end, decay_steps

    def __call__(self, env_steps: int) -> float:
        if self.decay_steps <= 0:
            return self.end
        fraction = min(1.0, env_steps / self.decay_steps)
        return self.start + fraction * (self.end - self.start)


def epsilon_greedy(greedy: np.ndarray, avail: np.ndarray, epsilon: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Replace each agent's greedy action, with probability ε, by a uniform available action.

    Args:
        greedy: ``[K, n_agents]`` greedy actions (already masked).
        avail: ``[K, n_agents, n_actions]`` bool.
        rng: the run's action-sampling generator (seeded, saved in checkpoints).
    """
    if epsilon <= 0.0:
        return greedy
    # argmax of uniform noise over the available actions is a uniform available action
    noise = rng.random(avail.shape)
    random_actions = np.where(avail, noise, -1.0).argmax(axis=-1)
    explore = rng.random(greedy.shape) < epsilon
    return np.where(explore, random_actions, greedy)
