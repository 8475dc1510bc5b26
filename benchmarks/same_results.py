"""Same seeds, same numbers: train every method briefly at this tree and at an earlier commit, and
compare the results to the bit. A check for refactors that must not change what xwq computes.

    python benchmarks/same_results.py --ref 4961aa5   # -> benchmarks/results/same_results.json

Each side runs in its own process from its own source tree (the earlier commit is checked out
into a temporary git worktree): matrix-game benchmarks of every method (600 env steps, seed 3)
and a short predator-prey QMIX benchmark (2,000 env steps, seed 2). For each it records the final
and best greedy test return, the number of updates and two sums of the trained parameters.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = r'''
import json, sys, tempfile
import torch
import xwq
folder = tempfile.mkdtemp()
dirs = dict(progress_bar=False, log_dir=folder, model_dir=folder, results_dir=folder)
def fingerprint(runner, summary):
    params = torch.cat([p.detach().flatten() for p in runner.agents.policy.parameters()])
    return {"final_test_return": summary["final_test_return"],
            "best_test_return": summary["best_test_return"], "updates": summary["updates"],
            "parameter_sum": float(params.sum()), "parameter_abs_sum": float(params.abs().sum())}
out = {}
for method in ("qmix", "cw_qmix", "ow_qmix", "vdn", "iql"):
    runner = xwq.get_runner(method, "matrix_game", "nonmonotonic", seed=3, running_steps=600,
                            eval_interval=300, **dirs)
    out[f"{method} matrix_game"] = fingerprint(runner, runner.benchmark())
runner = xwq.get_runner("qmix", "predator_prey", "punishment", seed=2, running_steps=2000,
                        eval_interval=1000, parallels=4, batch_size=4, buffer_size=50, **dirs)
out["qmix predator_prey"] = fingerprint(runner, runner.benchmark())
print(json.dumps(out))
'''


def probe(tree: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin",
                                          "SDL_NO_SIGNAL_HANDLERS": "1"}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", required=True, help="the earlier commit to compare with")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "same_results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        old_tree = Path(scratch) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.ref],
                       cwd=REPO, check=True, capture_output=True)
        try:
            old = probe(old_tree)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=REPO,
                           check=False, capture_output=True)
    new = probe(REPO)
    from xwq.runners.results import environment_report, write_json

    rows = []
    print(f"{'run':24} {'quantity':18} {args.ref[:10]:>14} {'this tree':>14}  same")
    for run, values in new.items():
        for key, value in values.items():
            same = old[run][key] == value
            rows.append({"run": run, "quantity": key, "ref": old[run][key], "now": value,
                         "identical": same})
            print(f"{run:24} {key:18} {old[run][key]:14.6g} {value:14.6g}  {same}")
    identical = all(row["identical"] for row in rows)
    print("all identical" if identical else "DIFFERENT")
    write_json({"ref": args.ref, "identical": identical, "rows": rows, **environment_report()},
               args.out)


if __name__ == "__main__":
    main()
