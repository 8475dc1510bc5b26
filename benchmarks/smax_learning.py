"""Learning on SMAX 3m: greedy test win rate over env steps, per method and seed, against a
uniformly random policy.

    taskset -c 1 python benchmarks/smax_learning.py --method qmix --seeds 1 2 3 --steps 150000
    taskset -c 1 python benchmarks/smax_learning.py --method wqmix --seeds 1 2 3 --steps 150000
    python benchmarks/smax_learning.py --table        # Markdown table from the JSON files

Each run uses the packaged SMAX config (``xwq/configs/envs/smax.yaml``: the WQMIX paper's SMAC
settings) with ``running_steps`` set to ``--steps``; every ``--eval-interval`` env steps (and at
0) it plays ``--test-episodes`` greedy battles on separate test envs and counts the battles won
(``info["battle_won"]`` at each episode's last step). Results go to
``benchmarks/results/smax/<method>_3m.json``; ``--table`` writes ``smax_3m.md`` beside them.
Needs ``pip install "xwq[smax]"``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

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
        prev_t = (torch.full((K, n), -1, dtype=torch.long, device=agents.device) if prev is None
                  else torch.as_tensor(prev, device=agents.device))
        return agents.act(obs, avail, prev_t, hidden, test_mode=True)

    return choose


def uniform(seed: int):
    rng = np.random.default_rng(seed)

    def choose(obs, avail, prev, hidden):
        noise = rng.random(avail.shape) * avail
        return noise.argmax(-1), None

    return choose


def run(method: str, seed: int, steps: int, eval_interval: int, test_episodes: int,
        workdir: str) -> dict:
    config = get_configs(method=method, env="smax", env_id="3m", overrides={
        "seed": seed, "running_steps": steps, "progress_bar": False, "save_interval": 0,
        "log_dir": f"{workdir}/logs", "model_dir": f"{workdir}/models",
        "results_dir": f"{workdir}/results"})
    experiment = Experiment.build(config)
    agents = experiment.agents
    test_envs = make_envs(config, test=True)
    start = time.perf_counter()
    curve = [[0, win_rate(test_envs, test_episodes, greedy(agents))]]
    print(f"{method} seed {seed}: step 0 win rate {curve[-1][1]:.3f}", flush=True)
    while agents.env_steps < steps:
        agents.train(until_env_steps=min(steps, curve[-1][0] + eval_interval))
        curve.append([agents.env_steps, win_rate(test_envs, test_episodes, greedy(agents))])
        print(f"{method} seed {seed}: step {agents.env_steps} win rate {curve[-1][1]:.3f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    result = {"seed": seed, "curve": curve, "final_win_rate": curve[-1][1],
              "env_steps": agents.env_steps, "updates": agents.learner.updates,
              "wall_seconds": time.perf_counter() - start}
    test_envs.close()
    experiment.close()
    return result


def random_baseline(test_episodes: int) -> float:
    config = get_configs(method="qmix", env="smax", env_id="3m")
    envs = make_envs(config, test=True)
    try:
        return win_rate(envs, test_episodes, uniform(0))
    finally:
        envs.close()


def write_table() -> Path:
    rows: list[str] = []
    runs: dict[str, dict] = {}
    for path in sorted(RESULTS.glob("*_3m.json")):
        data = json.loads(path.read_text())
        if "method" in data:  # not speed_3m.json
            runs[data["method"]] = data
    lines = ["# SMAX 3m: greedy test win rate", ""]
    for data in runs.values():
        lines.append(f"`{data['command']}`  ")
    lines += ["", "Packaged SMAX config (`xwq/configs/envs/smax.yaml`: the WQMIX paper's SMAC "
              "settings, 8 battles per step, 100-step limit); each test point is "
              f"{next(iter(runs.values()))['test_episodes']} greedy battles on fixed seeds. "
              "Both methods ran at once, pinned to one core (`taskset -c 1`) of a 2-core "
              "machine shared with other work: wall times are noisy.",
              "", f"Uniformly random policy: win rate "
              f"{next(iter(runs.values()))['random_win_rate']:.3f} over "
              f"{next(iter(runs.values()))['test_episodes']} test battles.", "",
              "| method | seed | env steps | updates | final win rate | best win rate | "
              "wall time (s) |", "|---|---|---|---|---|---|---|"]
    for method, data in runs.items():
        for r in data["runs"]:
            best = max(rate for _, rate in r["curve"])
            rows.append(f"| {method} | {r['seed']} | {r['env_steps']} | {r['updates']} | "
                        f"{r['final_win_rate']:.3f} | {best:.3f} | {r['wall_seconds']:.0f} |")
    lines += rows + ["", "Win rate over env steps (mean over seeds):", ""]
    for method, data in runs.items():
        steps = [step for step, _ in data["runs"][0]["curve"]]
        means = [np.mean([r["curve"][i][1] for r in data["runs"] if i < len(r["curve"])])
                 for i in range(len(steps))]
        lines.append(f"- {method}: " + ", ".join(
            f"{s // 1000}k: {m:.2f}" for s, m in zip(steps, means, strict=True)))
    out = RESULTS / "smax_3m.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="qmix")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--eval-interval", type=int, default=10_000)
    parser.add_argument("--test-episodes", type=int, default=32)
    parser.add_argument("--table", action="store_true", help="only write the Markdown table")
    args = parser.parse_args(argv)
    if args.table:
        print(write_table())
        return
    data = {"method": args.method, "env": "smax", "env_id": "3m",
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "steps": args.steps, "test_episodes": args.test_episodes,
            "eval_interval": args.eval_interval,
            "random_win_rate": random_baseline(args.test_episodes), "runs": []}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:  # written after every seed: a cut-short sweep keeps its runs
            data["runs"].append(run(args.method, seed, args.steps, args.eval_interval,
                                    args.test_episodes, workdir))
            (RESULTS / f"{args.method}_3m.json").write_text(json.dumps(data, indent=1))
    print(write_table())


if __name__ == "__main__":
    main()
