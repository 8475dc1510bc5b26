"""SMAX speed: compile time and env steps per second of the native vectorised env.

    taskset -c 0 python benchmarks/smax_speed.py --map 3m --envs 1 8 32

Per number of envs K: the time of the first ``reset`` and first ``step`` (JAX compiles them),
then the median over ``--repeats`` timings of ``--steps`` steps with uniformly random available
actions (host transfers and autoresets included). Prints a table and writes
``benchmarks/results/smax/speed_<map>.json``. Needs ``pip install "xwq[smax]"``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from xwq.environment.envs.smax import SMAXVecEnv, start_jax_on_cores

RESULTS = Path(__file__).resolve().parent / "results" / "smax"


def measure(env_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    start = time.perf_counter()
    env = SMAXVecEnv(env_id, num_envs)
    built = time.perf_counter()
    _, _, avail = env.reset(seed=0)
    reset_done = time.perf_counter()
    rng = np.random.default_rng(0)

    def random_actions(avail: np.ndarray) -> np.ndarray:
        return (rng.random(avail.shape) * avail).argmax(-1)

    avail = env.step(random_actions(avail)).avail
    first_step = time.perf_counter() - reset_done
    rates = []
    for _ in range(repeats):
        tick = time.perf_counter()
        for _ in range(steps):
            avail = env.step(random_actions(avail)).avail
        rates.append(steps * num_envs / (time.perf_counter() - tick))
    return {"env_id": env_id, "num_envs": num_envs, "build_seconds": built - start,
            "first_reset_seconds": reset_done - built, "first_step_seconds": first_step,
            "env_steps_per_second": float(np.median(rates)), "repeats": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="3m")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = start_jax_on_cores(1)
    rows = [measure(args.map, k, args.steps, args.repeats) for k in args.envs]
    print(f"SMAX {args.map}, JAX on core(s) {list(cores)} of {sorted(os.sched_getaffinity(0))}")
    print("| envs | first reset (compile) s | first step (compile) s | env steps/s |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['num_envs']} | {row['first_reset_seconds']:.1f} | "
              f"{row['first_step_seconds']:.1f} | {row['env_steps_per_second']:,.0f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"speed_{args.map}.json").write_text(json.dumps(
        {"jax_cores": list(cores), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
