"""Wall time of a several-seed benchmark, one seed after another vs ``workers`` at once.

Runs the same :class:`xwq.runners.Sweep` of benchmark runs (one :class:`xwq.runners.RunSpec` per
seed) twice, first on a :class:`~xwq.runners.SerialBackend` and then on a
:class:`~xwq.runners.ProcessBackend` with ``--workers`` processes, checks that every seed's final
and best greedy returns and update count agree between the two, and prints and writes the wall
times and their ratio.

    python benchmarks/parallel_seeds.py                     # wqmix, simple_spread_v3, 2 seeds
    python benchmarks/parallel_seeds.py --method qmix --seeds 1 2 3 4 --workers 2 --steps 20000
    python benchmarks/parallel_seeds.py --set parallels=4 learning_rate=1e-3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from xwq.cli import parse_set
from xwq.errors import XwqError
from xwq.runners import ProcessBackend, SerialBackend, Sweep, grid
from xwq.runners.results import environment_report, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "parallel_seeds.json"
SAME = ("final_test_return", "best_test_return", "updates", "env_steps")


def timed_benchmark(args: argparse.Namespace, workers: int, results_dir: str
                    ) -> tuple[float, list[dict]]:
    """Wall seconds of a sweep over ``args.seeds`` (serial when ``workers`` is 1, else that many
    processes at once) and the runs' summaries, in seed order."""
    specs = grid([args.method], [(args.env, args.env_id)], args.seeds,
                 overrides={"running_steps": args.steps, "eval_interval": args.eval_interval,
                            "progress_bar": False, "results_dir": results_dir,
                            "log_dir": results_dir, **args.overrides})
    backend = (ProcessBackend(min(workers, len(specs))) if workers > 1 and len(specs) > 1
               else SerialBackend())
    start = time.perf_counter()
    result = Sweep(specs, backend, progress=False).run()
    return time.perf_counter() - start, [run.summary for run in result["runs"]]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="wqmix")
    parser.add_argument("--env", default="mpe")
    parser.add_argument("--env-id", dest="env_id", default="simple_spread_v3")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per seed")
    parser.add_argument("--eval-interval", dest="eval_interval", type=int, default=5_000)
    parser.add_argument("--set", dest="sets", action="extend", nargs="+", default=[],
                        metavar="KEY=VALUE",
                        help="override config keys (several after one --set, or repeated); "
                             "VALUE is read as in config files, e.g. learning_rate=1e-3")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        args.overrides = parse_set(args.sets)
    except XwqError as error:
        parser.error(str(error))
    with tempfile.TemporaryDirectory() as workdir:
        serial_s, serial_runs = timed_benchmark(args, 1, f"{workdir}/one_by_one")
        parallel_s, parallel_runs = timed_benchmark(args, args.workers, f"{workdir}/parallel")
    same = all(a[key] == b[key] for a, b in zip(serial_runs, parallel_runs) for key in SAME)
    report = {
        "method": args.method, "env": args.env, "env_id": args.env_id, "seeds": args.seeds,
        "env_steps_per_seed": args.steps, "workers": args.workers,
        "one_by_one_s": serial_s, "parallel_s": parallel_s, "speedup": serial_s / parallel_s,
        "same_results": same,
        "final_test_returns": [run["final_test_return"] for run in parallel_runs],
        "command": " ".join(["python benchmarks/parallel_seeds.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        **environment_report()}
    print(f"{args.method} {args.env}/{args.env_id}, seeds {args.seeds}, {args.steps} env steps "
          f"each: one by one {serial_s:.1f} s, {args.workers} workers {parallel_s:.1f} s "
          f"({report['speedup']:.2f}x); same results: {same}")
    print(f"wrote {write_json(report, args.out)}")
    return report


if __name__ == "__main__":
    main()
