"""Learning on SMAX: greedy test win rate over env steps, per method and seed, against a
uniformly random policy.

    taskset -c 0 python benchmarks/smax_learning.py --method qmix --seeds 1 --steps 80000 --tag s1
    taskset -c 1 python benchmarks/smax_learning.py --method wqmix --seeds 1 2 3 --steps 80000
    python benchmarks/smax_learning.py --table            # Markdown table from the JSON files
    python benchmarks/smax_learning.py --env-id 2s3z ...  # another map

Each run uses the packaged SMAX config (``xwq/configs/envs/smax.yaml`` and the map's file) with
``running_steps`` set to ``--steps`` and any ``--set KEY=VALUE`` overrides; every
``--eval-interval`` env steps (and at 0) it plays ``--test-episodes`` greedy battles on
separate test envs and counts the battles won (``info["battle_won"]`` at each episode's last
step). Results go to ``benchmarks/results/smax/<method>_<map>[_<tag>].json`` (one file per
invocation: run seeds as separate invocations with their own ``--tag`` to spread them over
cores); the table ``smax_<map>.md`` beside them merges every file of the map.
Needs ``pip install "xwq[smax]"``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import xwq
from xwq.common.config import get_configs
from xwq.environment.make import make_envs
from xwq.runners.experiment import Experiment

RESULTS = Path(__file__).resolve().parent / "results" / "smax"
TEST_SEED = 10_000_000  # test battles: the same seeds at every evaluation and for every method


def win_rate(envs: xwq.VecEnv, n_episodes: int, choose) -> float:
    """Fraction of ``n_episodes`` battles won; ``choose(obs, avail, prev, hidden, first)``
    returns ``(actions, hidden)``. Each env's first episode after a seeded reset counts."""
    won: list[float] = []
    round_index = 0
    while len(won) < n_episodes:
        obs, _, avail = envs.reset(seed=TEST_SEED + round_index * envs.num_envs)
        active = np.ones(envs.num_envs, dtype=bool)
        hidden, prev = None, None
        while active.any():
            actions, hidden = choose(obs, avail, prev, hidden)
            result = envs.step(actions)
            for k in np.flatnonzero(active & result.done):
                won.append(float(result.info["battle_won"][k]))
            active &= ~result.done
            obs, avail, prev = result.obs, result.avail, actions
        round_index += 1
    return float(np.mean(won[:n_episodes]))


def greedy(agents):
    n = agents.spec.n_agents

    @torch.no_grad()
    def choose(obs, avail, prev, hidden):
        K = obs.shape[0]
        if hidden is None:
            hidden = agents.policy.agent.initial_hidden(K * n, agents.device)
        prev_t = (torch.full((K, n), -1, dtype=torch.long) if prev is None
                  else torch.as_tensor(prev))
        return agents.act(obs, avail, prev_t, hidden, test_mode=True)

    return choose


def uniform(seed: int):
    rng = np.random.default_rng(seed)

    def choose(obs, avail, prev, hidden):
        noise = rng.random(avail.shape) * avail
        return noise.argmax(-1), None

    return choose


def run(method: str, env_id: str, seed: int, steps: int, eval_interval: int,
        test_episodes: int, workdir: str, settings: dict, save=lambda result: None) -> dict:
    """One seed; ``save(result)`` is called after every evaluation with the run so far
    (``complete`` False until the budget is spent), so a run cut short keeps its curve."""
    config = get_configs(method=method, env="smax", env_id=env_id, overrides={
        **settings, "seed": seed, "running_steps": steps, "progress_bar": False,
        "save_interval": 0, "log_dir": f"{workdir}/logs", "model_dir": f"{workdir}/models",
        "results_dir": f"{workdir}/results"})
    experiment = Experiment.build(config)
    agents = experiment.agents
    test_envs = make_envs(config, test=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    curve: list[list] = []

    def evaluate() -> dict:
        curve.append([agents.env_steps, win_rate(test_envs, test_episodes, greedy(agents))])
        print(f"{method} seed {seed}: step {agents.env_steps} win rate {curve[-1][1]:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        result = {"seed": seed, "curve": curve, "final_win_rate": curve[-1][1],
                  "env_steps": agents.env_steps, "updates": agents.learner.updates,
                  "wall_seconds": time.perf_counter() - start,
                  "cpu_seconds": time.process_time() - cpu_start,
                  "complete": agents.env_steps >= steps}
        save(result)
        return result

    result = evaluate()
    while agents.env_steps < steps:
        agents.train(until_env_steps=min(steps, curve[-1][0] + eval_interval))
        result = evaluate()
    test_envs.close()
    experiment.close()
    return result


def random_baseline(env_id: str, test_episodes: int) -> float:
    config = get_configs(method="qmix", env="smax", env_id=env_id)
    envs = make_envs(config, test=True)
    try:
        return win_rate(envs, test_episodes, uniform(0))
    finally:
        envs.close()


def group_name(method: str, steps: int) -> str:
    """A table's row group: the method at its budget (runs of one budget compare)."""
    return f"{method} @{steps // 1000}k"


def load_runs(env_id: str) -> dict[str, list[dict]]:
    """Every run on ``env_id`` in the results folder, per :func:`group_name` (method and
    budget), sorted by seed; each run carries the command and settings of its file."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob(f"*_{env_id}*.json")):
        data = json.loads(path.read_text())
        if data.get("env_id") != env_id or "runs" not in data:  # e.g. speed_3m.json
            continue
        for r in data["runs"]:
            runs.setdefault(group_name(data["method"], data["steps"]), []).append(
                {**r, "command": data["command"], "settings": data.get("settings", {}),
                 "random_win_rate": data["random_win_rate"],
                 "test_episodes": data["test_episodes"]})
    return {method: sorted(rs, key=lambda r: r["seed"]) for method, rs in sorted(runs.items())}


def wilson_interval(wins: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a win probability from ``wins`` of ``trials``."""
    centre = (wins + z * z / 2) / (trials + z * z)
    half = z * np.sqrt(wins * (trials - wins) / trials + z * z / 4) / (trials + z * z)
    return max(0.0, centre - half), min(1.0, centre + half)


def permutation_p(values: np.ndarray, baseline: np.ndarray) -> float:
    """One-sided exact permutation test over seeds: the fraction of the ways to split the
    pooled seeds into groups of these sizes whose mean difference is at least the observed
    one (3 seeds against 3: the smallest possible p is 1/20 = 0.05)."""
    pooled = np.concatenate([values, baseline])
    observed = values.mean() - baseline.mean()
    splits = list(itertools.combinations(range(len(pooled)), len(values)))
    at_least = 0
    for chosen in splits:
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(chosen)] = True
        at_least += pooled[mask].mean() - pooled[~mask].mean() >= observed - 1e-12
    return at_least / len(splits)


def summarize(runs: dict[str, list[dict]], last: int = 3, baseline: str = "qmix"
              ) -> list[dict]:
    """Per group (:func:`group_name`), the *late* win rate of each seed (mean of its last
    ``last`` evaluations: one evaluation of 32 battles swings by ±0.15), their mean over seeds
    with a 95 % t interval (the spread between seeds), the pooled battles' win rate with a
    95 % Wilson interval (the spread within them), and the permutation p against the
    ``baseline`` method at the same budget (None for it, or without it)."""
    from scipy import stats

    late = {method: np.array([np.mean([rate for _, rate in r["curve"][-last:]]) for r in rs])
            for method, rs in runs.items()}
    rows = []
    for method, rs in runs.items():
        values = late[method]
        reference = f"{baseline} @{method.split(' @')[1]}"  # the same budget
        n = len(values)
        half = (stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)) if n > 1 \
            else float("nan")
        trials = sum(len(r["curve"][-last:]) * r["test_episodes"] for r in rs)
        wins = int(round(sum(rate * r["test_episodes"] for r in rs
                             for _, rate in r["curve"][-last:])))
        rows.append({
            "method": method, "seeds": n, "late": values.tolist(), "mean": float(values.mean()),
            "t_interval": (float(values.mean() - half), float(values.mean() + half)),
            "wins": wins, "battles": trials, "wilson_interval": wilson_interval(wins, trials),
            "p_vs_baseline": (permutation_p(values, late[reference])
                              if method != reference and reference in late else None)})
    return rows


def write_table(env_id: str = "3m") -> Path:
    """``smax_<env_id>.md``: the commands, per-seed final/best win rates with their env steps,
    wall and CPU times, and each method's curve (mean and per seed at every evaluation)."""
    runs = load_runs(env_id)
    if not runs:
        raise SystemExit(f"no results for SMAX {env_id} in {RESULTS}")
    first = next(iter(runs.values()))[0]
    lines = [f"# SMAX {env_id}: greedy test win rate", "",
             "Commands (one per run, each prefixed with `taskset -c 0` or `taskset -c 1`):", ""]
    lines += [f"    {r['command']}" for rs in runs.values() for r in rs]
    lines += ["", f"Packaged SMAX config (`xwq/configs/envs/smax.yaml`; config overrides per "
              f"run: {first['settings'] or 'none'}); each test point is {first['test_episodes']} "
              "greedy battles on fixed seeds (the same for every method and evaluation). "
              "Two runs at a time, each pinned to one core (`taskset -c 0|1`) of a 2-core "
              "machine shared with other work: wall times are noisy, CPU time "
              "(`time.process_time`) less so.", "",
              f"Uniformly random policy (over the available actions): win rate "
              f"{first['random_win_rate']:.3f} over {first['test_episodes']} test battles.", "",
              "| method | seed | env steps | updates | final win rate | best win rate "
              "(at env step) | wall (s) | CPU (s) |", "|---|---|---|---|---|---|---|---|"]
    for method, rs in runs.items():
        for r in rs:
            best_step, best = max(r["curve"], key=lambda point: (point[1], -point[0]))
            cpu = f"{r['cpu_seconds']:.0f}" if "cpu_seconds" in r else "-"
            steps = f"{r['env_steps']}" + ("" if r.get("complete", True) else " (cut short)")
            lines.append(f"| {method} | {r['seed']} | {steps} | {r['updates']} | "
                         f"{r['final_win_rate']:.3f} | {best:.3f} ({best_step}) | "
                         f"{r['wall_seconds']:.0f} | {cpu} |")
    last = 3
    lines += ["", f"Late win rate: each seed's mean over its last {last} evaluations "
              f"({last} × {first['test_episodes']} battles). Mean over seeds with a 95 % t "
              "interval (between seeds); all those battles pooled, with a 95 % Wilson "
              "interval (within them); and a one-sided exact permutation test over seeds "
              "against QMIX at the same budget.", "",
              "| method | late win rate per seed | mean [95 % t interval] | battles won "
              "[95 % Wilson] | p vs QMIX |", "|---|---|---|---|---|"]
    for row in summarize(runs, last):
        low, high = row["t_interval"]
        interval = "(one seed)" if row["seeds"] < 2 else f"[{low:.3f}, {high:.3f}]"
        w_low, w_high = row["wilson_interval"]
        p = "-" if row["p_vs_baseline"] is None else f"{row['p_vs_baseline']:.2f}"
        lines.append(f"| {row['method']} | {' / '.join(f'{v:.3f}' for v in row['late'])} | "
                     f"{row['mean']:.3f} {interval} | {row['wins']} of "
                     f"{row['battles']}: {row['wins'] / row['battles']:.3f} "
                     f"[{w_low:.3f}, {w_high:.3f}] | {p} |")
    lines += ["", "Win rate at each evaluation (env steps of the longest run's evaluations; "
              "the others' differ by under one vector step): mean over seeds, then each "
              "seed.", ""]
    for method, rs in runs.items():
        longest = max(rs, key=lambda r: len(r["curve"]))
        lines += [f"**{method}**", "", "| env steps | mean | "
                  + " | ".join(f"seed {r['seed']}" for r in rs) + " |",
                  "|---|---|" + "---|" * len(rs)]
        for i, (step, _) in enumerate(longest["curve"]):
            rates = [r["curve"][i][1] if i < len(r["curve"]) else None for r in rs]
            known = [rate for rate in rates if rate is not None]
            mean = f"{np.mean(known):.3f}" + ("" if len(known) == len(rs)
                                              else f" ({len(known)} seeds)")
            lines.append(f"| {step} | {mean} | " + " | ".join(
                "-" if rate is None else f"{rate:.3f}" for rate in rates) + " |")
        lines.append("")
    out = RESULTS / f"smax_{env_id}.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="qmix")
    parser.add_argument("--env-id", default="3m", help="the SMAX map")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides (YAML values), e.g. training_frequency=16")
    parser.add_argument("--tag", default="", help="suffix of the results file (pilots)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--eval-interval", type=int, default=10_000)
    parser.add_argument("--test-episodes", type=int, default=32)
    parser.add_argument("--table", action="store_true",
                        help="only write the Markdown table of --env-id")
    args = parser.parse_args(argv)
    if args.table:
        print(write_table(args.env_id))
        return
    settings = {key: yaml.safe_load(value)
                for key, value in (item.split("=", 1) for item in args.set)}
    name = f"{args.method}_{args.env_id}" + (f"_{args.tag}" if args.tag else "")
    data = {"method": args.method, "env": "smax", "env_id": args.env_id, "settings": settings,
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "steps": args.steps, "test_episodes": args.test_episodes,
            "eval_interval": args.eval_interval,
            "random_win_rate": random_baseline(args.env_id, args.test_episodes), "runs": []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:  # written after every evaluation: a cut-short run keeps its curve
            def save(result: dict) -> None:
                (RESULTS / f"{name}.json").write_text(
                    json.dumps({**data, "runs": [*data["runs"], result]}, indent=1))

            data["runs"].append(run(args.method, args.env_id, seed, args.steps,
                                    args.eval_interval, args.test_episodes, workdir, settings,
                                    save))
    print(write_table(args.env_id))


if __name__ == "__main__":
    main()
