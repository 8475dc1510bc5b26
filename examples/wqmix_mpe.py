"""Train Weighted QMIX (OW) on MPE simple_spread_v3 with the packaged defaults, then test it.

    python examples/wqmix_mpe.py                      # 200k env steps (minutes on a laptop CPU)
    python examples/wqmix_mpe.py --set running_steps=20000 --set parallels=4
"""

from __future__ import annotations

import argparse

import yaml

import xwq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="wqmix")
    parser.add_argument("--env-id", default="simple_spread_v3")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set learning_rate=0.001")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)

    runner = xwq.get_runner(args.method, "mpe", args.env_id, **overrides)
    model_path = runner.run()  # train; saves the final model
    tester = xwq.get_runner(args.method, "mpe", args.env_id, is_test=True,
                            model_path=str(model_path), **overrides)
    tester.run()  # greedy test episodes; logs the mean return


if __name__ == "__main__":
    main()
