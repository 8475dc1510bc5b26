"""Throughput of xwq on MPE simple_spread_v3: env, acting, updates, end to end, overhead.

For each method and both env backends (native numpy-vectorised simple_spread, and mpe2 through
PettingZoo in a serial vec env) this measures:

- env-only env steps/s with uniformly random actions;
- acting-only env steps/s (one batched forward pass for all envs × agents, ε-greedy);
- ms per gradient update on 32 episodes × 25 steps, 3 agents (GRU 64);
- end-to-end training env steps/s for a fixed budget at the packaged update ratio;
- the overhead ratio: end-to-end time / (env-only time + acting time + update time) for the
  same env steps and the same number of updates (1.0 means the loop adds nothing).

Timings are medians over repeats; compare ratios within one run, never across machines.

    python benchmarks/throughput.py                       # all methods, both backends
    python benchmarks/throughput.py --methods qmix wqmix --budget 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import xwq
from xwq.runners.results import environment_report, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "throughput.json"


def median_time(fn, repeats: int, warmup: int = 0) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def make_runner(method: str, backend: str, workdir: str, **overrides):
    return xwq.get_runner(method, "mpe", "simple_spread_v3", progress_bar=False,
                          vectorize="native" if backend == "native" else "serial",
                          log_dir=workdir, log_interval=10**9, **overrides)


def env_only(runner, steps: int, repeats: int) -> float:
    envs, spec = runner.envs, runner.envs.spec
    rng = np.random.default_rng(0)
    vec_steps = steps // envs.num_envs

    def roll():
        envs.reset(seed=0)
        for _ in range(vec_steps):
            envs.step(rng.integers(0, spec.n_actions, (envs.num_envs, spec.n_agents)))

    return vec_steps * envs.num_envs / median_time(roll, repeats)


def acting_only(runner, steps: int, repeats: int) -> float:
    agents, envs = runner.agents, runner.envs
    obs, _, avail = envs.reset(seed=0)
    K, n = envs.num_envs, envs.spec.n_agents
    vec_steps = steps // K

    def act():
        hidden = agents.policy.agent.initial_hidden(K * n, agents.device)
        prev = torch.full((K, n), -1, dtype=torch.long, device=agents.device)
        for _ in range(vec_steps):
            actions, hidden = agents.act(obs, avail, prev, hidden)
            prev = torch.as_tensor(actions, device=agents.device)

    return vec_steps * K / median_time(act, repeats)


def first_batch(runner) -> dict:
    """Collect until the buffer holds a batch, then sample one (on the agents' device)."""
    agents = runner.agents
    while not agents.buffer.can_sample(agents.config.batch_size):
        agents.collect()
    return agents.buffer.sample(agents.config.batch_size, agents.rng, agents.device)


def update_ms(runner, repeats: int) -> float:
    batch, learner = first_batch(runner), runner.agents.learner
    return 1000 * median_time(lambda: learner.update(batch), max(repeats, 20), warmup=1)


def end_to_end(method: str, backend: str, budget: int, workdir: str) -> tuple[float, int]:
    runner = make_runner(method, backend, workdir)
    start = time.perf_counter()
    runner.agents.train(budget // runner.config.parallels)
    seconds = time.perf_counter() - start
    updates = runner.agents.learner.updates
    steps = runner.agents.env_steps
    runner.finish()
    return steps / seconds, updates


def measure(method: str, backend: str, budget: int, repeats: int, workdir: str) -> dict:
    runner = make_runner(method, backend, workdir)
    env_sps = env_only(runner, budget, repeats)
    act_sps = acting_only(runner, budget, repeats)
    ms = update_ms(runner, repeats)
    runner.finish()
    e2e_sps, updates = end_to_end(method, backend, budget, workdir)
    parts = budget / env_sps + budget / act_sps + updates * ms / 1000
    return {"method": method, "backend": backend, "env_steps_per_s": env_sps,
            "acting_steps_per_s": act_sps, "update_ms": ms, "updates": updates,
            "end_to_end_steps_per_s": e2e_sps,
            "overhead_ratio": (budget / e2e_sps) / parts}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+",
                        default=["iql", "vdn", "qmix", "wqmix", "cw_qmix", "ow_qmix"])
    parser.add_argument("--backends", nargs="+", default=["native", "pettingzoo"])
    parser.add_argument("--budget", type=int, default=10_000, help="env steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for method in args.methods:
            for backend in args.backends:
                rows.append(measure(method, backend, args.budget, args.repeats, workdir))
                row = rows[-1]
                print(f"{method:8s} {backend:10s} env {row['env_steps_per_s']:9.0f}/s  "
                      f"act {row['acting_steps_per_s']:8.0f}/s  update "
                      f"{row['update_ms']:6.1f} ms  end-to-end "
                      f"{row['end_to_end_steps_per_s']:7.0f}/s  overhead "
                      f"{row['overhead_ratio']:.2f}", flush=True)
    report = {"rows": rows, "budget_env_steps": args.budget, "repeats": args.repeats,
              **environment_report()}
    print(f"wrote {write_json(report, args.out)}")
    return rows


if __name__ == "__main__":
    main()
