"""Does it learn? Train a method on MPE with ``runner.benchmark()`` and compare its greedy test
return with a uniformly random policy on the very same test episodes (same seeds).

    python benchmarks/mpe_learning.py                                  # wqmix, 200k env steps
    python benchmarks/mpe_learning.py --method cw_qmix --steps 100000 --seed 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import xwq
from xwq.runners.results import eval_curve, write_json

RESULTS = Path(__file__).resolve().parent / "results"


def random_policy_returns(agents, config, episodes: int, rng_seed: int = 0) -> list[float]:
    """Returns of uniformly random available actions on the test episodes the agents'
    evaluations play (``agents.evaluate``: the same seeds)."""
    envs = xwq.make_envs(config, test=True)
    rng = np.random.default_rng(rng_seed)

    def uniform(obs, avail, prev_actions, hidden):
        return np.where(avail, rng.random(avail.shape), -1.0).argmax(-1), hidden

    returns = agents.evaluate(envs, episodes, actor=uniform).returns.tolist()
    envs.close()
    return returns


def summarise(run_dir: Path, config, random_returns: list[float]) -> dict:
    steps, returns = eval_curve(run_dir)
    return {
        "method": config.method, "env": config.env_name, "env_id": config.env_id,
        "seed": config.seed, "running_steps": config.running_steps,
        "curve": [list(point) for point in zip(steps, returns)],
        "final_test_return": returns[-1],
        "random_policy_return": float(np.mean(random_returns)),
        "random_policy_episodes": len(random_returns),
        "untrained_greedy_return": returns[0],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="wqmix")
    parser.add_argument("--env-id", default="simple_spread_v3")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--test-episodes", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    start = time.time()
    runner = xwq.get_runner(args.method, "mpe", args.env_id, seed=args.seed,
                            running_steps=args.steps, test_episode=args.test_episodes,
                            progress_bar=False)
    config = runner.config
    summary = runner.benchmark()
    report = summarise(Path(summary["run_dir"]), config,
                       random_policy_returns(runner.agents, config, 1024))
    report.update(wall_seconds=time.time() - start, command="python benchmarks/mpe_learning.py "
                  + " ".join(sys.argv[1:] if argv is None else argv),
                  commit=subprocess.run(["git", "rev-parse", "HEAD"], cwd=RESULTS.parent,
                                        capture_output=True, text=True).stdout.strip())
    out = write_json(report, args.out or RESULTS / f"{args.method}_{args.env_id}_{args.steps}.json")
    print(f"{args.method} on {args.env_id}, {args.steps} env steps: greedy test return "
          f"{report['final_test_return']:.2f} vs random policy "
          f"{report['random_policy_return']:.2f} (untrained greedy "
          f"{report['untrained_greedy_return']:.2f}); wrote {out}")
    return report


if __name__ == "__main__":
    main()
