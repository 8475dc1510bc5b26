"""Start-up cost of the package and the command line, here and at an earlier commit: medians of
fresh processes (wall and CPU seconds).

    python benchmarks/startup_time.py --ref 4961aa5   # -> benchmarks/results/startup_time.json

Measured: ``python -c "import xwq"``, ``xwq --help``, and a command with a config error
(``xwq train --method qmx``), each run ``--repeats`` times in a new process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "import xwq": ["-c", "import xwq"],
    "xwq --help": ["-m", "xwq", "--help"],
    "xwq train --method qmx (config error)": ["-m", "xwq", "train", "--method", "qmx"],
}


def time_command(tree: Path, args: list[str], repeats: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=tree, capture_output=True,
                       env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {"wall_median_s": statistics.median(walls), "cpu_median_s": statistics.median(cpus),
            "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", help="an earlier commit to measure beside this tree")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "startup_time.json")
    args = parser.parse_args()
    trees = {"this tree": REPO}
    with tempfile.TemporaryDirectory() as scratch:
        if args.ref:
            old = Path(scratch) / "old"
            subprocess.run(["git", "worktree", "add", "--detach", str(old), args.ref], cwd=REPO,
                           check=True, capture_output=True)
            trees = {args.ref: old, **trees}
        try:
            results = {name: {label: time_command(tree, command, args.repeats)
                              for label, command in COMMANDS.items()}
                       for name, tree in trees.items()}
        finally:
            if args.ref:
                subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO,
                               check=False, capture_output=True)
    print(f"{'command':40}" + "".join(f"{name[:12]:>26}" for name in results))
    for label in COMMANDS:
        cells = "".join(f"{r[label]['wall_median_s']:10.3f} s wall {r[label]['cpu_median_s']:5.2f}"
                        " cpu" for r in results.values())
        print(f"{label:40}{cells}")
    from xwq.runners.results import environment_report, write_json

    write_json({"results": results, **environment_report()}, args.out)


if __name__ == "__main__":
    main()
