"""Replay of whole episodes: preallocated arrays in compact dtypes, uniform sampling.

Layout for capacity N and time limit T (see DESIGN.md §2): obs ``[N, T+1, n, o]``, state
``[N, T+1, S]``, avail ``[N, T+1, n, A]`` bool, actions ``[N, T, n]`` (int8/int16),
reward ``[N, T]``, terminated ``[N, T]`` bool, filled ``[N, T]`` bool (the padding mask).

Memory follows the data: obs and state are stored in the env's own dtype
(:attr:`EnvSpec.obs_dtype`: a uint8 image stays uint8, a quarter of float32) and become float32
only in the batch :meth:`EpisodeBuffer.sample` hands to torch, on the learner's device. With
``state_source: observations`` (:meth:`EnvSpec.with_state_source`) no state is stored at all: the
batch's state is the agents' observations, concatenated.

The size is checked before anything is allocated — before the envs are built, by
:func:`check_buffer_memory` — and a buffer over ``buffer_memory_budget_mb`` is refused with the
largest ``buffer_size`` that fits, never shrunk silently.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from xwq.environment.interfaces import EnvSpec
from xwq.errors import CheckpointError, XwqError

logger = logging.getLogger(__name__)

MIB = 2**20


class BufferTooLargeError(XwqError, MemoryError):
    """The replay buffer would exceed ``buffer_memory_budget_mb``."""


def _action_dtype(n_actions: int) -> np.dtype:
    return np.dtype(np.int8 if n_actions <= 127 else np.int16)


def episode_layout(spec: EnvSpec) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-episode field shapes (without the episode axis) and storage dtypes; no ``state``
    when the spec takes it from the observations."""
    T, n = spec.max_episode_steps, spec.n_agents
    layout = {
        "obs": ((T + 1, n, spec.obs_dim), np.dtype(spec.obs_dtype)),
        "state": ((T + 1, spec.state_dim), np.dtype(spec.state_dtype)),
        "avail": ((T + 1, n, spec.n_actions), np.dtype(bool)),
        "actions": ((T, n), _action_dtype(spec.n_actions)),
        "reward": ((T,), np.dtype(np.float32)),
        "terminated": ((T,), np.dtype(bool)),
        "filled": ((T,), np.dtype(bool)),
    }
    if spec.state_source == "observations":
        del layout["state"]
    return layout


def episode_nbytes(spec: EnvSpec) -> int:
    """Bytes one stored episode takes (every field of :func:`episode_layout`)."""
    return sum(int(np.prod(shape)) * dtype.itemsize
               for shape, dtype in episode_layout(spec).values())


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None where
    it cannot be read."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_buffer_memory(spec: EnvSpec, capacity: int, budget_mb: float,
                        warn: bool = True) -> int:
    """The bytes a buffer of ``capacity`` episodes of ``spec`` needs; a BufferTooLargeError
    naming the largest ``buffer_size`` that fits ``budget_mb`` if it needs more, and (with
    ``warn``) a warning if it needs more memory than the machine has available now."""
    per_episode = episode_nbytes(spec)
    nbytes = per_episode * capacity
    needed_mb = nbytes / MIB
    if needed_mb > budget_mb:
        fits = int(budget_mb * MIB // per_episode)
        T, n = spec.max_episode_steps, spec.n_agents
        episode = (f"one episode holds {per_episode / MIB:,.2f} MiB: {T + 1} steps × {n} "
                   f"agents × {spec.obs_dim} obs values ({spec.obs_dtype})")
        if spec.state_source == "env":
            episode += f" + {T + 1} × {spec.state_dim} state values ({spec.state_dtype})"
        fix = (f"buffer_size ≤ {fits} fits in {budget_mb:g} MiB: lower buffer_size to {fits}"
               if fits >= 1 else f"not even one episode fits in {budget_mb:g} MiB")
        raise BufferTooLargeError(
            f"the replay buffer needs {needed_mb:,.0f} MiB ({capacity} episodes × "
            f"{per_episode / MIB:.2f} MiB) but buffer_memory_budget_mb is {budget_mb:g}; "
            f"{fix}, or raise buffer_memory_budget_mb to {needed_mb:,.0f}. ({episode}"
            + ("; state_source: observations stores no state" if spec.state_source == "env"
               else "") + ")")
    available = available_memory() if warn else None
    if available is not None and nbytes > available:
        logger.warning(
            "the replay buffer (%d episodes) needs %.0f MiB, more than the %.0f MiB this "
            "machine has available now (buffer_memory_budget_mb is %g): it may run out of "
            "memory as the buffer fills; lower buffer_size to %d or free memory",
            capacity, needed_mb, available / MIB, budget_mb,
            max(1, available // per_episode))
    return nbytes


class EpisodeBuffer:
    """A ring buffer of ``capacity`` episodes.

    Args:
        capacity: episodes kept (``buffer_size``).
        spec: the env's sizes and storage dtypes (state from the observations when its
            ``state_source`` says so).
        budget_mb: refuse (``BufferTooLargeError``) to allocate more than this many MiB.
    """

    def __init__(self, capacity: int, spec: EnvSpec, budget_mb: float = 4096.0) -> None:
        self.capacity = capacity
        self.spec = spec
        self.layout = episode_layout(spec)
        self.nbytes = check_buffer_memory(spec, capacity, budget_mb)
        self.data = {key: np.zeros((capacity, *shape), dtype=dtype)
                     for key, (shape, dtype) in self.layout.items()}
        self.size = 0
        self.position = 0
        logger.info("replay buffer: %d episodes × %d steps, %.1f MiB (obs %s)", capacity,
                    spec.max_episode_steps, self.nbytes / MIB, spec.obs_dtype)

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
        """``batch_size`` episodes uniformly without replacement, trimmed to the longest one;
        obs and state float32 (whatever their storage dtype), actions int64."""
        index = rng.choice(self.size, size=batch_size, replace=False)
        steps = int(self.data["filled"][index].any(axis=0).nonzero()[0].max()) + 1
        batch = {}
        for key, array in self.data.items():
            length = steps + 1 if key in ("obs", "state", "avail") else steps
            # moved in the stored dtype (uint8 obs: a quarter of the bytes), converted there
            value = torch.from_numpy(array[index, :length]).to(device, non_blocking=True)
            if key == "actions":
                value = value.long()
            elif key in ("obs", "state"):
                value = value.float()
            batch[key] = value
        if "state" not in batch:  # state_source: observations
            obs = batch["obs"]
            batch["state"] = obs.reshape(*obs.shape[:2], -1)
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
