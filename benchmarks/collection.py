"""How many real ``env.step`` calls does training make per env step it counts, and where does it
stop? Measured on envs whose episodes vary in length, where collecting in rounds (every env
plays one episode, the round waits for the longest) steps finished envs for nothing.

Each scenario wraps its env's ``step`` with a counter (serial vectorisation, so every call
happens in this process), trains ``runner.run()`` for ``--steps`` env steps and reports the
calls per counted env step (1.00: nothing thrown away) and the env steps actually trained
(the overshoot beyond ``running_steps``).

    python benchmarks/collection.py --label after          # writes results/collection.json
    python benchmarks/collection.py --steps 3000 --scenarios random_length
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

import xwq
from xwq.environment.envs.predator_prey import make_predator_prey
from xwq.runners.results import environment_report, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "collection.json"
CALLS = {"step": 0}


class RandomLengthEnv(xwq.MultiAgentEnv):
    """2 agents, 3 actions, observation ``[t / T, noise]``; each episode's length is drawn
    uniformly from ``[min_length, T]`` at reset (from the env's seeded generator)."""

    def __init__(self, env_id: str = "uniform", min_length: int = 10, max_length: int = 100,
                 **_: Any) -> None:
        self.agents = ["a", "b"]
        self.observation_space = {a: spaces.Box(-1.0, 2.0, (2,)) for a in self.agents}
        self.action_space = {a: spaces.Discrete(3) for a in self.agents}
        self.state_space = spaces.Box(-1.0, 2.0, (2,))
        self.max_episode_steps = max_length
        self.min_length = min_length
        self.rng = np.random.default_rng()

    def _obs(self) -> dict:
        value = np.array([self.t / self.max_episode_steps, self.rng.random()], np.float32)
        return {a: value for a in self.agents}

    def reset(self, seed: int | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.length = int(self.rng.integers(self.min_length, self.max_episode_steps + 1))
        return self._obs(), {}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        reward = float(sum(int(u) == 1 for u in actions.values()))
        done = self.t >= self.length
        return (self._obs(), dict.fromkeys(self.agents, reward),
                dict.fromkeys(self.agents, done), dict.fromkeys(self.agents, False), {})

    def state(self) -> np.ndarray:
        return np.array([self.t / self.max_episode_steps, 0.0], np.float32)


def counted(factory):
    """``factory`` whose envs add one to ``CALLS["step"]`` on every ``step`` call."""
    def make(env_id: str, **env_kwargs: Any):
        env = factory(env_id, **env_kwargs)
        step = env.step

        def counting_step(actions):
            CALLS["step"] += 1
            return step(actions)

        env.step = counting_step
        return env

    return make


SCENARIOS: dict[str, dict] = {
    # episodes of 10..100 steps, uniformly
    "random_length": dict(env=("counted_random_length", "uniform"), factory=RandomLengthEnv,
                          overrides=dict(training_frequency=100, batch_size=8)),
    # the paper's predator-prey (200-step limit; episodes end early when every prey is caught
    # or every agent frozen), through its PettingZoo face
    "predator_prey": dict(env=("counted_predator_prey", "punishment"),
                          factory=make_predator_prey,
                          overrides=dict(training_frequency=200, batch_size=8,
                                         buffer_size=64)),
    # a small, crowded grid: captures are frequent, so episode lengths vary widely
    "predator_prey_small": dict(env=("counted_predator_prey", "punishment"),
                                factory=make_predator_prey,
                                overrides=dict(training_frequency=200, batch_size=8,
                                               buffer_size=64,
                                               env_kwargs={"grid_size": 5, "n_prey": 2})),
}


def measure(name: str, steps: int, parallels: int, seed: int, workdir: str) -> dict:
    scenario = SCENARIOS[name]
    env_name, env_id = scenario["env"]
    xwq.register_env(env_name, counted(scenario["factory"]))
    runner = xwq.get_runner("qmix", env_name, env_id, vectorize="serial", parallels=parallels,
                            running_steps=steps, seed=seed, save_interval=0,
                            progress_bar=False, log_dir=workdir, model_dir=workdir,
                            **scenario["overrides"])
    agents = runner.agents  # builds the envs (each reset once; resets are not steps)
    CALLS["step"] = 0
    start = time.perf_counter()
    runner.run()
    seconds = time.perf_counter() - start
    counted_steps = int(agents.env_steps)
    return {"scenario": name, "parallels": parallels, "running_steps": steps,
            "counted_env_steps": counted_steps, "env_step_calls": CALLS["step"],
            "calls_per_counted_step": CALLS["step"] / counted_steps,
            "overshoot": counted_steps - steps, "episodes": int(agents.episodes),
            "updates": int(agents.learner.updates), "wall_s": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS),
                        choices=list(SCENARIOS))
    parser.add_argument("--steps", type=int, default=3000, help="running_steps of each run")
    parser.add_argument("--parallels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default="after",
                        help="name of this measurement in the JSON (e.g. before, after)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        rows = [measure(name, args.steps, args.parallels, args.seed, workdir)
                for name in args.scenarios]
    print(f"{'scenario':<20} {'running_steps':>13} {'counted':>8} {'env.step calls':>14} "
          f"{'calls/counted':>13} {'overshoot':>9} {'episodes':>8} {'updates':>7}")
    for row in rows:
        print(f"{row['scenario']:<20} {row['running_steps']:>13} {row['counted_env_steps']:>8} "
              f"{row['env_step_calls']:>14} {row['calls_per_counted_step']:>13.2f} "
              f"{row['overshoot']:>9} {row['episodes']:>8} {row['updates']:>7}")
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.setdefault("measurements", {})[args.label] = {
        "rows": rows,
        "command": " ".join(["python benchmarks/collection.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        **environment_report()}
    print(f"wrote {write_json(report, args.out)}")
    return report["measurements"][args.label]


if __name__ == "__main__":
    main()
