"""Seeding every source of randomness a run uses, and saving/restoring their states; the seed
of every episode an env plays."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: the streams of episode seeds: training envs, evaluation episodes
TRAIN_EPISODES, TEST_EPISODES = 0, 1


def episode_seed(seed: int, stream: int, index: int, episode: int) -> int:
    """The reset seed of one episode: a function of the run ``seed``, the ``stream``
    (:data:`TRAIN_EPISODES` or :data:`TEST_EPISODES`), ``index`` (the training env's index, or
    0 for evaluation) and the ``episode`` count, hashed by numpy's SeedSequence into
    ``[0, 2**32)`` so that neighbouring runs, envs and episodes get unrelated streams.

    Training env k's e-th episode uses ``episode_seed(seed, TRAIN_EPISODES, k, e)`` wherever
    and whenever it is played, so the data depend on neither timing nor vectorisation.
    """
    sequence = np.random.SeedSequence([int(seed), int(stream), int(index), int(episode)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def get_rng_states() -> dict:
    """The global RNG states, in types that ``torch.load(weights_only=True)`` accepts."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                  *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_initialized():  # never start CUDA (and its memory) for a CPU run
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_initialized():
        cuda_states = [state.cpu() for state in states["cuda"]]
        torch.cuda.set_rng_state_all(cuda_states[:torch.cuda.device_count()])
