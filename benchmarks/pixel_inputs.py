"""Memory and scale follow the data: pixel observations in the replay buffer and the networks.

Two measurements on :class:`PixelEnv`, a fake env whose agents see random uint8 images (and
whose state is a larger uint8 image), and on the shapes PettingZoo's pistonball declares:

1. **buffer**: MiB of the default replay buffer (``buffer_size`` 5000) when observations and
   state are stored as float32 (what xwq did before) and in the env's own dtype, uint8 (now),
   and with ``state_source: observations`` (no state stored);
2. **scale**: a few hundred QMIX updates on PixelEnv with ``input_normalization: auto`` (pixels
   scaled to [0, 1] inside the networks) and ``none`` (raw 0..255): the largest loss and
   gradient norm seen, and whether they stayed finite.

    python benchmarks/pixel_inputs.py                   # writes results/pixel_inputs.json
    python benchmarks/pixel_inputs.py --updates 50 --size 16
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

import xwq
from xwq.agents.buffer import episode_nbytes
from xwq.environment.interfaces import EnvSpec
from xwq.learners import NonFiniteLossError
from xwq.runners.results import environment_report, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "pixel_inputs.json"
MIB = 2**20


class PixelEnv(xwq.MultiAgentEnv):
    """``n_agents`` agents, each seeing a random ``size × size × 3`` image; the state is a
    ``2 size × 2 size × 3`` image; 4 actions. The team is rewarded for each agent whose action
    equals its image's top-left red value mod 4, so the pixels matter. ``dtype``: the spaces'
    dtype, ``uint8`` (values 0..255) or ``float32`` (the same values declared as float).

    ``state_calls`` counts the calls of :meth:`state` (class-wide).
    """

    state_calls = 0

    def __init__(self, env_id: str = "pixels", n_agents: int = 3, size: int = 8,
                 max_episode_steps: int = 10, dtype: str = "uint8") -> None:
        self.agents = [f"camera_{i}" for i in range(n_agents)]
        self.dtype = np.dtype(dtype)
        image = spaces.Box(0, 255, (size, size, 3), dtype=self.dtype)
        self.observation_space = dict.fromkeys(self.agents, image)
        self.action_space = {a: spaces.Discrete(4) for a in self.agents}
        self.state_space = spaces.Box(0, 255, (2 * size, 2 * size, 3), dtype=self.dtype)
        self.max_episode_steps = max_episode_steps
        self.size = size
        self.rng = np.random.default_rng(0)
        self._obs: dict[str, np.ndarray] = {}

    def _observe(self) -> dict[str, np.ndarray]:
        shape = (self.size, self.size, 3)
        self._obs = {a: self.rng.integers(0, 256, shape).astype(self.dtype)
                     for a in self.agents}
        return self._obs

    def reset(self, seed: int | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._observe(), {}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        hits = [float(actions[a] == int(self._obs[a][0, 0, 0]) % 4) for a in self.agents]
        self.t += 1
        done = self.t >= self.max_episode_steps
        rewards = dict.fromkeys(self.agents, float(np.mean(hits)))
        return (self._observe(), rewards, dict.fromkeys(self.agents, False),
                dict.fromkeys(self.agents, done), {})

    def state(self) -> np.ndarray:
        type(self).state_calls += 1
        return self.rng.integers(0, 256, self.state_space.shape).astype(self.dtype)


def pistonball_spec(dtype: str) -> EnvSpec:
    """The sizes pettingzoo.butterfly.pistonball_v6 declares (20 pistons, 457 × 120 × 3 uint8
    observations, a 560 × 880 × 3 uint8 state, 125 cycles), without needing pymunk."""
    return EnvSpec(tuple(f"piston_{i}" for i in range(20)), 457 * 120 * 3, 560 * 880 * 3, 3,
                   125, obs_dtype=dtype, state_dtype=dtype)


def buffer_table(buffer_size: int = 5000, size: int = 32) -> list[dict[str, Any]]:
    """MiB of a ``buffer_size``-episode buffer, float32 (before) vs the env's dtype (after)."""
    pixel = xwq.environment.ArrayEnv(PixelEnv(size=size, max_episode_steps=25)).spec
    rows = []
    for name, spec_of in (("PixelEnv", lambda dtype: _with_dtype(pixel, dtype)),
                          ("pistonball_v6 (declared shapes)", pistonball_spec)):
        before, after = spec_of("float32"), spec_of("uint8")
        rows.append({
            "env": name, "buffer_size": buffer_size,
            "float32_mib": episode_nbytes(before) * buffer_size / MIB,
            "uint8_mib": episode_nbytes(after) * buffer_size / MIB,
            "uint8_state_from_obs_mib": episode_nbytes(
                after.with_state_source("observations")) * buffer_size / MIB})
    return rows


def _with_dtype(spec: EnvSpec, dtype: str) -> EnvSpec:
    from dataclasses import replace
    return replace(spec, obs_dtype=dtype, state_dtype=dtype)


def train_scale(normalization: str, updates: int, size: int, seed: int = 1,
                method: str = "qmix") -> dict[str, Any]:
    """``updates`` updates of ``method`` on PixelEnv: the largest loss and gradient norm."""
    xwq.register_env("pixels", PixelEnv)
    with tempfile.TemporaryDirectory() as folder:
        runner = xwq.get_runner(
            method, "pixels", "pixels", env_kwargs={"size": size}, seed=seed,
            input_normalization=normalization, parallels=4, batch_size=8, buffer_size=64,
            training_frequency=1, vectorize="serial", progress_bar=False, save_interval=0,
            running_steps=10**9, log_dir=folder, model_dir=folder, results_dir=folder)
        agents = runner.agents
        losses, norms, error = [], [], None
        try:
            while agents.learner.updates < updates:
                stats = agents.train(n_steps=1)
                if stats:
                    losses.append(stats["loss"])
                    norms.append(stats["grad_norm"])
        except NonFiniteLossError as failure:
            error = str(failure)
        finally:
            runner.finish()
    return {"input_normalization": normalization, "updates": agents.learner.updates,
            "max_loss": max(losses, default=math.nan),
            "last_loss": losses[-1] if losses else math.nan,
            "max_grad_norm": max(norms, default=math.nan),
            "finite": error is None and all(map(math.isfinite, losses + norms)),
            "error": error}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--size", type=int, default=32, help="image side of PixelEnv")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    table = buffer_table(size=args.size)
    for row in table:
        print(f"{row['env']}: buffer of {row['buffer_size']} episodes: float32 "
              f"{row['float32_mib']:,.0f} MiB -> uint8 {row['uint8_mib']:,.0f} MiB "
              f"(state from observations: {row['uint8_state_from_obs_mib']:,.0f} MiB)")
    scale = [train_scale(mode, args.updates, args.size) for mode in ("auto", "none")]
    for row in scale:
        print(f"input_normalization {row['input_normalization']}: {row['updates']} updates, "
              f"max loss {row['max_loss']:.4g}, last loss {row['last_loss']:.4g}, max grad "
              f"norm {row['max_grad_norm']:.4g}, finite {row['finite']}")
    report = {"buffer": table, "scale": scale, "size": args.size, **environment_report()}
    print(f"wrote {write_json(report, args.out)}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
