"""Replay of whole episodes: preallocated arrays in compact dtypes, uniform sampling.

Layout for capacity N and time limit T (see DESIGN.md §2): obs ``[N, T+1, n, o]``, state
``[N, T+1, S]``, avail ``[N, T+1, n, A]`` bool, actions ``[N, T, n]`` (int8/int16),
reward ``[N, T]``, terminated ``[N, T]`` bool, filled ``[N, T]`` bool (the padding mask).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from xwq.environment.interfaces import EnvSpec
from xwq.errors import CheckpointError, XwqError

logger = logging.getLogger(__name__)


class BufferTooLargeError(XwqError, MemoryError):
    """The replay buffer would exceed ``buffer_memory_budget_mb``."""


def _action_dtype(n_actions: int) -> np.dtype:
    return np.dtype(np.int8 if n_actions <= 127 else np.int16)


def episode_layout(spec: EnvSpec) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-episode field shapes (without the episode axis) and storage dtypes."""
    T, n = spec.max_episode_steps, spec.n_agents
    return {
        "obs": ((T + 1, n, spec.obs_dim), np.dtype(np.float32)),
        "state": ((T + 1, spec.state_dim), np.dtype(np.float32)),
        "avail": ((T + 1, n, spec.n_actions), np.dtype(bool)),
        "actions": ((T, n), _action_dtype(spec.n_actions)),
        "reward": ((T,), np.dtype(np.float32)),
        "terminated": ((T,), np.dtype(bool)),
        "filled": ((T,), np.dtype(bool)),
    }


class EpisodeBuffer:
    """A ring buffer of ``capacity`` episodes.

    Args:
        capacity: episodes kept (``buffer_size``).
        spec: the env's sizes.
        budget_mb: refuse (``BufferTooLargeError``) to allocate more than this many MiB.
    """

    def __init__(self, capacity: int, spec: EnvSpec, budget_mb: float = 4096.0) -> None:
        self.capacity = capacity
        self.layout = episode_layout(spec)
        per_episode = sum(int(np.prod(shape)) * dtype.itemsize
                          for shape, dtype in self.layout.values())
        self.nbytes = per_episode * capacity
        needed_mb = self.nbytes / 2**20
        if needed_mb > budget_mb:
            raise BufferTooLargeError(
                f"the replay buffer needs {needed_mb:,.0f} MiB ({capacity} episodes × "
                f"{per_episode / 2**20:.2f} MiB) but buffer_memory_budget_mb is {budget_mb:g}; "
                "lower buffer_size or raise buffer_memory_budget_mb")
        self.data = {key: np.zeros((capacity, *shape), dtype=dtype)
                     for key, (shape, dtype) in self.layout.items()}
        self.size = 0
        self.position = 0
        logger.info("replay buffer: %d episodes × %d steps, %.1f MiB", capacity,
                    spec.max_episode_steps, needed_mb)

    def add(self, episodes: dict[str, np.ndarray]) -> None:
        """Store K episodes: each field ``[K, ...]`` in the layout above (unused steps padded)."""
        count = len(episodes["filled"])
        index = (self.position + np.arange(count)) % self.capacity
        for key, array in self.data.items():
            array[index] = episodes[key]
        self.position = int((self.position + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def sample(self, batch_size: int, rng: np.random.Generator,
               device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """``batch_size`` episodes uniformly without replacement, trimmed to the longest one."""
        index = rng.choice(self.size, size=batch_size, replace=False)
        steps = int(self.data["filled"][index].any(axis=0).nonzero()[0].max()) + 1
        batch = {}
        for key, array in self.data.items():
            length = steps + 1 if key in ("obs", "state", "avail") else steps
            value = torch.from_numpy(array[index, :length])
            if key == "actions":
                value = value.long()
            batch[key] = value.to(device, non_blocking=True)
        return batch

    def state_dict(self) -> dict:
        """The stored episodes as tensors (for checkpoints loaded with ``weights_only=True``)."""
        return {"data": {k: torch.from_numpy(v[: self.size].copy()) for k, v in self.data.items()},
                "size": self.size, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        size = state["size"]
        if size > self.capacity:
            raise CheckpointError(f"checkpoint buffer holds {size} episodes, capacity is "
                                  f"{self.capacity}; use the same buffer_size to resume")
        for key, array in self.data.items():
            array[:size] = state["data"][key].cpu().numpy()
        self.size, self.position = size, state["position"]
