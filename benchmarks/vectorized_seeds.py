"""Seeds as a batch dimension: what S seeds trained as one batch cost per seed.

For each method and env, and S in ``--sizes`` (default 1 2 4 8), on one torch thread pinned to
one core (``--cpu``), this builds S seeds' agents and measures, per seed:

1. **update**: one stacked update of the S seeds (:class:`xwq.learners.stacked.StackedLearner`,
   each seed its own batch of ``batch_size`` episodes from its own buffer), divided by S; beside
   it, the same seeds' plain updates one after another (``learner.update``), divided by S;
   the two alternate, median of ``--repeats``;
2. **training loop**: the S seeds as a :class:`xwq.agents.seed_group.SeedGroup` training
   ``--steps`` env steps each (acting in one forward pass, updates together, each seed its own
   env batch), after their buffers hold a batch; env steps per second *per seed* = S × steps /
   seconds, beside the same loop of one seed alone (plain agents), the two alternating in
   ``--chunks`` pieces.

First, the GRU alone three ways (:func:`measure_gru`: S ``nn.GRU`` calls, ``vmap`` over a
matmul GRU, a grouped GRU over stacked weights without ``vmap``). Wall time and process CPU
time are both recorded. The machine is shared: compare the ratios
within one run (the ``ratio`` columns), not absolute figures across runs. Writes
``results/vectorized_seeds.json``.

    python benchmarks/vectorized_seeds.py                        # qmix, wqmix; spread, pp
    python benchmarks/vectorized_seeds.py --methods qmix --envs spread --sizes 1 8 --steps 2000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import xwq
from xwq.agents.seed_group import SeedGroup
from xwq.cli import parse_set
from xwq.learners.stacked import StackedLearner
from xwq.policies.stacked import MatmulGRU, StackedModules
from xwq.runners.results import environment_report, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "vectorized_seeds.json"
ENVS = {
    "spread": ("mpe", "simple_spread_v3", {"vectorize": "native"}),
    # a small buffer: the paper's 5000 episodes of 200 steps are ~3 GiB per seed
    "predator_prey": ("predator_prey", "punishment", {"buffer_size": 64}),
}


def build(method: str, env: str, seeds: list[int], workdir: str, **extra) -> list:
    name, env_id, overrides = ENVS[env]
    return [xwq.get_runner(method, name, env_id, progress_bar=False, log_dir=workdir,
                           log_interval=10**9, seed=seed, **{**overrides, **extra}).agents
            for seed in seeds]


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> np.ndarray:
    wall, cpu = clocks()
    return np.array([wall - start[0], cpu - start[1]])


def fill(agents: list, group: SeedGroup | None) -> None:
    """Collect (training the whole time, as a run does) until every buffer holds a batch."""
    size = agents[0].config.batch_size
    while not all(a.buffer.can_sample(size) for a in agents):
        if group is None:
            for a in agents:
                a.train(1)
        else:
            group.run([lambda a=a: a.train(1) for a in agents])


def measure(method: str, env: str, size: int, steps: int, repeats: int, chunks: int,
            workdir: str, **overrides) -> dict:
    """Plain and stacked updates, then the training loop of one seed alone and of the group,
    each pair interleaved (so that a change in the machine's load hits both sides)."""
    seeds = list(range(1, size + 1))
    plain = build(method, env, seeds, workdir, **overrides)
    members = build(method, env, seeds, workdir, **overrides)
    group = SeedGroup(members)
    fill(plain, None)
    fill(members, group)
    batches = [a.buffer.sample(a.config.batch_size, a.rng) for a in plain]
    stacked: StackedLearner = group.learner
    times = {"plain": [], "stacked": []}
    for repeat in range(repeats + 1):
        start = clocks()
        for a, batch in zip(plain, batches):
            a.learner.update(batch)
        plain_time = since(start)
        start = clocks()
        stacked.update(batches, [None] * size)
        if repeat:  # the first of each is a warm-up
            times["plain"].append(plain_time)
            times["stacked"].append(since(start))
    plain_ms, stacked_ms = (1000 * np.median(times[k], axis=0) / size for k in times)
    K = plain[0].envs.num_envs
    chunk = max(1, steps // K // chunks)
    alone, together = np.zeros(2), np.zeros(2)
    for _ in range(chunks):
        start = clocks()
        plain[0].train(chunk)
        alone += since(start)
        start = clocks()
        group.run([lambda a=a: a.train(chunk) for a in members])
        together += since(start)
    for a in plain + members:
        a.finish()
    done = chunks * chunk * K
    return {"plain_update_ms": plain_ms[0], "plain_update_cpu_ms": plain_ms[1],
            "stacked_update_ms": stacked_ms[0], "stacked_update_cpu_ms": stacked_ms[1],
            "alone_steps_per_s": done / alone[0], "alone_cpu_steps_per_s": done / alone[1],
            "group_steps_per_s_per_seed": size * done / together[0],
            "group_cpu_steps_per_s_per_seed": size * done / together[1],
            "timed_env_steps_per_seed": done,
            "updates_per_seed": members[0].learner.updates}


def measure_gru(size: int, repeats: int, rows: int = 96, steps: int = 26,
                width: int = 64) -> dict:
    """Forward + backward of S seeds' GRUs (simple_spread's shapes: 32 episodes × 3 agents,
    26 steps, width 64), three ways, alternating: S separate ``nn.GRU`` calls; ``vmap`` over
    :class:`~xwq.policies.stacked.MatmulGRU` (what a seed group runs); and a grouped GRU
    written directly with ``baddbmm`` over stacked weights (no vmap). Milliseconds per seed,
    median CPU time."""
    torch.manual_seed(0)
    grus = [nn.GRU(width, width, batch_first=True) for _ in range(size)]
    inputs = torch.randn(size, rows, steps, width, requires_grad=True)
    stack = StackedModules([nn.GRU(width, width, batch_first=True) for _ in range(size)])
    template = MatmulGRU(grus[0])
    P = stack.params

    def separate():
        for gru, x in zip(grus, inputs.unbind(0)):
            gru(x)[0].sum().backward(retain_graph=True)

    def vmapped():
        out = torch.func.vmap(lambda p, x: torch.func.functional_call(template, p, (x,))[0])(
            P, inputs)
        out.sum().backward()

    def grouped():
        H = width
        projected = torch.baddbmm(P["bias_ih_l0"].unsqueeze(1),
                                  inputs.reshape(size, rows * steps, width),
                                  P["weight_ih_l0"].transpose(1, 2))
        h, outputs = inputs.new_zeros(size, rows, H), []
        weight, bias = P["weight_hh_l0"].transpose(1, 2), P["bias_hh_l0"].unsqueeze(1)
        for x_t in projected.view(size, rows, steps, 3 * H).unbind(2):
            x_rz, x_n = x_t.split([2 * H, H], -1)
            h_rz, h_n = torch.baddbmm(bias, h, weight).split([2 * H, H], -1)
            reset, update = torch.sigmoid(x_rz + h_rz).chunk(2, -1)
            new = torch.tanh(x_n + reset * h_n)
            h = new + update * (h - new)
            outputs.append(h)
        torch.stack(outputs, 2).sum().backward()

    variants = {"separate_nn_gru": separate, "vmap_matmul_gru": vmapped,
                "grouped_bmm_gru": grouped}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats + 1):
        for name, fn in variants.items():
            start = time.process_time()
            fn()
            if repeat:
                times[name].append(time.process_time() - start)
    return {"seeds": size, **{f"{name}_cpu_ms_per_seed": 1000 * float(np.median(t)) / size
                              for name, t in times.items()}}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["qmix", "wqmix"])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--pp-sizes", nargs="+", type=int, default=None,
                        help="S values for predator-prey (default: --sizes)")
    parser.add_argument("--pp-methods", nargs="+", default=None,
                        help="methods for predator-prey (default: --methods)")
    parser.add_argument("--steps", type=int, default=1600,
                        help="env steps per seed in the timed training loop")
    parser.add_argument("--pp-steps", type=int, default=1600,
                        help="the same for predator-prey (200-step episodes)")
    parser.add_argument("--repeats", type=int, default=5, help="timed updates (median)")
    parser.add_argument("--chunks", type=int, default=4,
                        help="the timed loops alternate alone / group in this many pieces")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin to this core (default: the last one this process may use)")
    parser.add_argument("--gru-only", action="store_true",
                        help="only the GRU comparison (nn.GRU × S vs vmap vs grouped bmm)")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                        metavar="KEY=VALUE", help="config keys for every run (e.g. a smaller "
                                                  "batch_size for a quick check)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    overrides = parse_set(args.overrides)
    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    cpu = args.cpu if args.cpu is not None else max(affinity)
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    try:
        return _run(args, cpu, overrides)
    finally:  # a caller in the same process (a test) gets its cores and threads back
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, cpu: int, overrides: dict) -> list[dict]:
    gru = [measure_gru(size, 3 * args.repeats) for size in args.sizes]
    for row in gru:
        print("GRU fwd+bwd, CPU ms per seed, S={seeds}: {separate_nn_gru_cpu_ms_per_seed:.1f} "
              "nn.GRU each, {vmap_matmul_gru_cpu_ms_per_seed:.1f} vmap, "
              "{grouped_bmm_gru_cpu_ms_per_seed:.1f} grouped bmm".format(**row), flush=True)
    rows: list[dict] = []

    def save(rows: list[dict]) -> None:
        write_json({"rows": rows, "gru": gru, "cpu": cpu,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    **environment_report()}, args.out)

    with tempfile.TemporaryDirectory() as workdir:
        for env in [] if args.gru_only else args.envs:
            steps = args.pp_steps if env == "predator_prey" else args.steps
            pp = env == "predator_prey"
            for method in (args.pp_methods or args.methods) if pp else args.methods:
                for size in (args.pp_sizes or args.sizes) if pp else args.sizes:
                    row = {"method": method, "env": env, "seeds": size,
                           **measure(method, env, size, steps, args.repeats, args.chunks,
                                     workdir, **overrides)}
                    row["update_ratio"] = row["plain_update_ms"] / row["stacked_update_ms"]
                    row["update_cpu_ratio"] = (row["plain_update_cpu_ms"]
                                               / row["stacked_update_cpu_ms"])
                    row["loop_ratio"] = (row["group_steps_per_s_per_seed"]
                                         / row["alone_steps_per_s"])
                    row["loop_cpu_ratio"] = (row["group_cpu_steps_per_s_per_seed"]
                                             / row["alone_cpu_steps_per_s"])
                    rows.append(row)
                    print(f"{method:6s} {env:13s} S={size}: update/seed plain "
                          f"{row['plain_update_ms']:6.1f} ms, stacked "
                          f"{row['stacked_update_ms']:6.1f} ms (x{row['update_ratio']:.2f}, "
                          f"CPU x{row['update_cpu_ratio']:.2f}); loop "
                          f"{row['group_steps_per_s_per_seed']:6.0f} steps/s/seed vs alone "
                          f"{row['alone_steps_per_s']:6.0f} (x{row['loop_ratio']:.2f}, CPU "
                          f"x{row['loop_cpu_ratio']:.2f})", flush=True)
                    save(rows)  # after every row: a long run that is stopped keeps its rows
    save(rows)
    print(f"written to {args.out}")
    return rows


if __name__ == "__main__":
    main()
