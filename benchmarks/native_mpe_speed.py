"""Env-only speed of simple_spread_v3: native numpy envs vs K separate mpe2 envs.

Three ways to step K envs with uniformly random discrete actions (autoreset included):

- ``native``: :class:`xwq.environment.envs.mpe_native.SimpleSpreadVecEnv`, all K worlds in array
  operations;
- ``serial (xwq)``: xwq's :class:`SerialVecEnv` over K ``ArrayEnv(mpe2 parallel_env)``, i.e.
  what ``make_envs`` builds with ``vectorize: serial``;
- ``mpe2 direct``: K ``mpe2.simple_spread_v3.parallel_env`` stepped in a Python loop with
  agent-keyed dicts (no xwq code at all).

Each is timed ``--repeats`` times over ``--steps`` vectorised steps; the table shows the median
env steps per second (K per vectorised step) and the speed-up of native over each. Results go to
``benchmarks/results/native_mpe_speed.json`` (``--out``), with the package versions and the
machine (:func:`xwq.runners.results.environment_report`).

    python benchmarks/native_mpe_speed.py [--envs 64] [--steps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402

from xwq.environment import ArrayEnv, SerialVecEnv, as_multi_agent_env  # noqa: E402
from xwq.environment.envs.mpe import make_mpe  # noqa: E402
from xwq.environment.envs.mpe_native import SimpleSpreadVecEnv  # noqa: E402
from xwq.runners.results import environment_report, write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "native_mpe_speed.json"
ENV_KWARGS = {"N": 3, "local_ratio": 0.5, "max_cycles": 25}


def time_native(num_envs: int, actions: np.ndarray) -> float:
    env = SimpleSpreadVecEnv("simple_spread_v3", num_envs, **ENV_KWARGS)
    env.reset(seed=0)
    start = time.perf_counter()
    for step_actions in actions:
        env.step(step_actions)
    return time.perf_counter() - start


def time_serial(num_envs: int, actions: np.ndarray) -> float:
    def factory() -> ArrayEnv:
        return ArrayEnv(as_multi_agent_env(make_mpe("simple_spread_v3", **ENV_KWARGS)))

    env = SerialVecEnv([factory] * num_envs)
    env.reset(seed=0)
    start = time.perf_counter()
    for step_actions in actions:
        env.step(step_actions)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def time_mpe2(num_envs: int, actions: np.ndarray) -> float:
    envs = [make_mpe("simple_spread_v3", **ENV_KWARGS) for _ in range(num_envs)]
    for k, env in enumerate(envs):
        env.reset(seed=k)
    names = envs[0].possible_agents
    start = time.perf_counter()
    for step_actions in actions:
        for env, env_actions in zip(envs, step_actions.tolist(), strict=True):
            _, _, terminated, truncated, _ = env.step(dict(zip(names, env_actions)))
            if any(terminated.values()) or any(truncated.values()):
                env.reset()
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, default=64, help="K, envs stepped together")
    parser.add_argument("--steps", type=int, default=200, help="vectorised steps per repeat")
    parser.add_argument("--native-steps", type=int, default=2000,
                        help="vectorised steps per repeat for the (much faster) native env")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    n_agents = ENV_KWARGS["N"]
    runs = {
        "native": (time_native, args.native_steps),
        "serial (xwq)": (time_serial, args.steps),
        "mpe2 direct": (time_mpe2, args.steps),
    }
    rows = {}
    for name, (timer, steps) in runs.items():
        actions = rng.integers(0, 5, (steps, args.envs, n_agents))
        rates = [args.envs * steps / timer(args.envs, actions) for _ in range(args.repeats)]
        rows[name] = {"steps_per_s_median": statistics.median(rates),
                      "steps_per_s_all": rates, "vector_steps": steps}

    native = rows["native"]["steps_per_s_median"]
    print(f"simple_spread_v3, K={args.envs} envs, random actions, median of {args.repeats}")
    print(f"{'implementation':<16}{'env steps/s':>14}{'native speed-up':>18}")
    for name, row in rows.items():
        rate = row["steps_per_s_median"]
        row["native_speedup"] = native / rate
        print(f"{name:<16}{rate:>14,.0f}{native / rate:>17.1f}x")

    path = write_json({
        "benchmark": "native_mpe_speed", "env_id": "simple_spread_v3", "env_kwargs": ENV_KWARGS,
        "num_envs": args.envs, "repeats": args.repeats, "results": rows,
        **environment_report(),
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
