"""Train Weighted QMIX (OW) on MPE simple_spread_v3 with the packaged defaults, then test it.

    python examples/wqmix_mpe.py                      # 200k env steps (minutes on a laptop CPU)
    python examples/wqmix_mpe.py --set running_steps=20000 parallels=4 learning_rate=1e-3
"""

from __future__ import annotations

import argparse

import xwq
from xwq.cli import parse_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="wqmix")
    parser.add_argument("--env-id", default="simple_spread_v3")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides (several after one --set, or repeated), read as "
                             "in config files, e.g. --set learning_rate=1e-3 parallels=4")
    args = parser.parse_args()
    try:
        overrides = parse_set(args.set)
    except xwq.UsageError as error:
        parser.error(str(error))

    runner = xwq.get_runner(args.method, "mpe", args.env_id, **overrides)
    model_path = runner.run()  # train; saves the final model
    tester = xwq.get_runner(args.method, "mpe", args.env_id, is_test=True,
                            model_path=str(model_path), **overrides)
    tester.run()  # greedy test episodes; logs the mean return


if __name__ == "__main__":
    main()
