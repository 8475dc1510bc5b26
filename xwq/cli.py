"""The ``xwq`` command: ``xwq train|test|benchmark|plot`` (also ``python -m xwq``).

Examples::

    xwq train --method cw_qmix --env matrix_game --env-id nonmonotonic --set running_steps=2000
    xwq train --method qmix --env mpe --env-id simple_spread_v3 --resume auto
    xwq test --method cw_qmix --env mpe --env-id simple_spread_v3 --render
    xwq benchmark --method qmix --env matrix_game --env-id nonmonotonic --seeds 1 2 3 --workers 2
    xwq benchmark --method qmix --env mpe --env-id simple_spread_v3 --seeds 1 2 --vectorize-seeds 2
    xwq plot results/qmix/matrix_game results/cw_qmix/matrix_game --out results/compare
    xwq benchmark --method qmix --env matrix_game --env-id nonmonotonic --seeds 1 2 --backend ray
    xwq sweep grid.yaml --backend ray --address auto

``--set KEY=VALUE`` values are read as YAML (``1e-3``, ``[32, 32]``, ``{N: 3}``, ``null``) and
validated exactly like config files. User errors (bad key or value, unknown method or env,
missing file, env that does not fit) print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from xwq.common.tracebacks import error_line, raised_by_user_code
from xwq.errors import MissingFileError, UsageError, XwqError

EXIT_USER_ERROR = 2
EXIT_TRAINING_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM

def parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    """``["learning_rate=1e-3", "fc_hidden_sizes=[32,32]"]`` -> ``{"learning_rate": 0.001,
    "fc_hidden_sizes": [32, 32]}`` (values read as in config files; the last one wins)."""
    from xwq.common.config import load_yaml

    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set learning_rate=1e-3")
        try:
            value = load_yaml(text)
        except yaml.YAMLError as error:
            problem = str(error).splitlines()[0]
            raise UsageError(f"--set {key}={text}: the value is not valid YAML ({problem})") \
                from None
        overrides[key] = value
    return overrides


def _catalogue() -> str:
    """The methods and environments, for ``--help``: read from the config files (so the help
    answers without importing torch), plus any env registered in this process."""
    from xwq.common.config import available_envs, available_methods

    envs = available_envs()
    if "xwq.registry" in sys.modules:  # envs registered in this process (never imported here)
        from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV

        for name in set(REGISTRY_ENV) | set(REGISTRY_NATIVE_ENV):
            envs.setdefault(name, [])
    lines = ["methods: " + ", ".join(available_methods()), "envs (env: env ids):"]
    for name, ids in sorted(envs.items()):
        lines.append(f"  {name}: {', '.join(ids) if ids else '(any env_id its factory accepts)'}")
    lines.append("config keys and their defaults: xwq/configs/base.yaml")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    catalogue = _catalogue()
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="xwq", formatter_class=formatter, epilog=catalogue,
        description="Weighted QMIX and the QMIX family: train, test, benchmark, plot.")
    from xwq import __version__

    parser.add_argument("--version", action="version", version=f"xwq {__version__}")
    commands = parser.add_subparsers(dest="command",
                                     metavar="{train,test,benchmark,sweep,plot}")
    commands.required = True

    def add_backend_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--backend", choices=["local", "ray"], default="local",
                         help="where the runs execute: local processes (default) or Ray tasks "
                              "(pip install \"xwq[ray]\")")
        sub.add_argument("--address", metavar="auto|HOST:PORT",
                         help="ray: the cluster to join ('auto': the one started on this "
                              "machine with ray start; default: start Ray here)")
        sub.add_argument("--sync-results", dest="sync_results", action="store_true",
                         help="ray: copy each finished run back here (workers without a "
                              "shared file system)")

    def add_vectorize_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--vectorize-seeds", dest="vectorize_seeds", type=int, default=1,
                         metavar="S",
                         help="train up to S seeds of a configuration together in one process "
                              "as one batch (stacked networks: one forward pass to act, one "
                              "update for all); each seed's results and run folder are those "
                              "of the seed alone")

    def add_run_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--method", help="one of the methods listed below "
                                          "(default: from --config, else base.yaml)")
        sub.add_argument("--env", help="registered env name, e.g. mpe, matrix_game, "
                                       "predator_prey")
        sub.add_argument("--env-id", dest="env_id", help="scenario, e.g. simple_spread_v3")
        sub.add_argument("--config", help="a YAML file of config keys (overrides the packaged "
                                          "defaults)")
        sub.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                         help="override config keys (several after one --set, or repeated); "
                              "VALUE is YAML, e.g. --set learning_rate=1e-3 "
                              "fc_hidden_sizes=[32,32]")
        sub.add_argument("--import", dest="imports", action="extend", nargs="+", default=[],
                         metavar="MODULE",
                         help="import these modules first (e.g. the module that registers your "
                              "envs with xwq.register_env); installed packages can declare "
                              "envs under the 'xwq.envs' entry-point group instead")
        sub.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                         help="run each of these seeds (default: the config's seed)")
        sub.add_argument("--debug", action="store_true",
                         help="show the full traceback of an error")

    train = commands.add_parser(
        "train", formatter_class=formatter, epilog=catalogue,
        help="train and save the final model (checkpoints every save_interval env steps)")
    add_run_options(train)
    train.add_argument("--resume", nargs="?", const="auto", metavar="auto|PATH",
                       help="continue an interrupted run: 'auto' (the default when the flag is "
                            "given alone) finds the newest unfinished run of this method/env/"
                            "env_id/seed; PATH is a checkpoint file or a run folder")

    test = commands.add_parser(
        "test", formatter_class=formatter, epilog=catalogue,
        help="load a trained model and play greedy episodes")
    add_run_options(test)
    test.add_argument("--render", action="store_true",
                      help="save a GIF of one greedy episode next to the model")
    test.add_argument("--model", help="model file (default: the newest final model of this "
                                      "method/env/env_id/seed)")

    bench = commands.add_parser(
        "benchmark", formatter_class=formatter, epilog=catalogue,
        help="train with periodic greedy evaluation; results, curves, summary (and statistics "
             "across --seeds)")
    add_run_options(bench)
    bench.add_argument("--resume", nargs="?", const="auto", metavar="auto|PATH",
                       help="continue interrupted runs ('auto': each seed its newest unfinished "
                            "run; finished ones are reused)")
    bench.add_argument("--workers", type=int, default=1, metavar="N",
                       help="run up to N of the --seeds at once, each in its own process "
                            "(one torch thread each by default; use at most your free cores)")
    add_vectorize_option(bench)
    add_backend_options(bench)

    sweep = commands.add_parser(
        "sweep", formatter_class=formatter, epilog=catalogue,
        help="run a grid file (methods x scenarios x search values x seeds) and aggregate each "
             "group of seeds")
    sweep.add_argument("grid", metavar="GRID.yaml",
                       help="methods, scenarios, seeds, overrides, search (and tune) as in "
                            "README 'Running on a cluster'")
    sweep.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                       help="override config keys of every run (over the file's overrides)")
    sweep.add_argument("--resume", nargs="?", const="auto", choices=["auto"],
                       help="continue an interrupted sweep: finished runs are reused, "
                            "unfinished ones resume from their newest checkpoint")
    sweep.add_argument("--workers", type=int, default=1, metavar="N",
                       help="local backend: up to N runs at once, each in its own process")
    add_vectorize_option(sweep)
    add_backend_options(sweep)
    sweep.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    plot = commands.add_parser(
        "plot", formatter_class=formatter,
        help="compare methods: one figure (median + quartile band per method) and one table")
    plot.add_argument("dirs", nargs="+", metavar="RESULT_DIR",
                      help="benchmark run folders, or folders holding them")
    plot.add_argument("--out", help="output folder (default: results/comparison_<timestamp>)")
    plot.add_argument("--title", help="figure and table title")
    plot.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


# --- commands ----------------------------------------------------------------------------------
def _resume_source(args: argparse.Namespace) -> None:
    """``--resume PATH`` without --method/--env/--env-id/--config: take them from the run
    folder's config.yaml."""
    resume = getattr(args, "resume", None)
    if resume in (None, "auto"):
        return
    path = Path(resume)
    run_dir = path if path.is_dir() else path.parent.parent
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        if not path.exists():
            raise MissingFileError(f"--resume {resume}: no such checkpoint or run folder")
        return
    from xwq.common.config import read_yaml_file

    saved = read_yaml_file(config_file) or {}
    if not isinstance(saved, dict):
        raise UsageError(f"--resume {resume}: {config_file} is not a run's config (a mapping of "
                         f"key: value), got {type(saved).__name__}; give --method, --env, "
                         "--env-id and --config yourself")
    if args.config is None:
        args.config = str(config_file)
    args.method = args.method or saved.get("method")
    args.env = args.env or saved.get("env_name")
    args.env_id = args.env_id or saved.get("env_id")


def import_modules(names: Sequence[str]) -> None:
    """``--import MODULE``: import each module (its import registers the user's envs)."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise UsageError(f"--import {name}: cannot import it ({error}); is its folder on "
                             "PYTHONPATH or the package installed?") from None
        except Exception as error:  # the module itself is broken: say where
            raise UsageError(f"--import {name}: importing it raised {error_line(error)} "
                             "(--debug shows the traceback)") from error


def _runner(args: argparse.Namespace, overrides: dict, is_test: bool = False) -> Any:
    from xwq.common.config import get_configs

    # config errors answer before torch and the components are imported
    config = get_configs(args.config, args.method, args.env, args.env_id, overrides)
    # through the package (the function), never the module of the same name: importing
    # xwq.get_runner directly would leave the module as the package's attribute xwq.get_runner
    from xwq import get_runner

    import_modules(args.imports)

    names = ("method", "env_name", "env_id")  # given once, as get_runner's arguments
    return get_runner(config.method, config.env_name, config.env_id, config_path=args.config,
                      is_test=is_test, **{k: v for k, v in overrides.items() if k not in names})


def _seeds(args: argparse.Namespace) -> list[int | None]:
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds must be distinct, got {args.seeds}")
    return list(args.seeds) if args.seeds else [None]


def _with_seed(overrides: dict, seed: int | None) -> dict:
    return overrides if seed is None else {**overrides, "seed": seed}


def cmd_train(args: argparse.Namespace, overrides: dict) -> int:
    _resume_source(args)
    seeds = _seeds(args)
    if args.resume not in (None, "auto") and len(seeds) > 1:
        raise UsageError("--resume PATH continues one run; with several --seeds use --resume "
                         "auto")
    for seed in seeds:
        runner = _runner(args, _with_seed(overrides, seed))
        model = runner.run(resume=args.resume)
        print(f"seed {runner.config.seed}: final model {model}"
              + (f" (run folder {runner.run_dir})" if runner.run_dir else ""))
    return 0


def cmd_test(args: argparse.Namespace, overrides: dict) -> int:
    extra = dict(overrides)
    if args.render:
        extra["render"] = True
    if args.model:
        extra["model_path"] = args.model
    for seed in _seeds(args):
        runner = _runner(args, _with_seed(extra, seed), is_test=True)
        mean = runner.run()
        print(f"seed {runner.config.seed}: mean greedy return {mean:.3f} over "
              f"{runner.config.test_episode} episodes")
        if runner.gif_path is not None:
            print(f"GIF: {runner.gif_path}")
    return 0


def cmd_benchmark(args: argparse.Namespace, overrides: dict) -> int:
    from xwq.runners.process_backend import check_workers

    check_workers(args.workers, args.seeds)  # before building anything
    _check_vectorize_seeds(args)
    if args.vectorize_seeds > 1 and not args.seeds:
        raise UsageError("--vectorize-seeds trains several seeds together: give --seeds too")
    if args.backend == "ray" and not args.seeds:
        raise UsageError("--backend ray runs several seeds: give --seeds too")
    _check_backend_options(args)
    _resume_source(args)
    runner = _runner(args, overrides)
    if args.seeds:
        _seeds(args)
        backend = _backend(args, len(args.seeds)) if args.backend == "ray" else None
        result = runner.benchmark(seeds=args.seeds, resume=args.resume, workers=args.workers,
                                  backend=backend, vectorize_seeds=args.vectorize_seeds)
        for summary in result["runs"]:
            print(f"seed {summary['seed']}: final {summary['final_test_return']:.3f}, best "
                  f"{summary['best_test_return']:.3f}, {summary['env_steps']} env steps, "
                  f"{summary['wall_time']:.1f} s -> {summary['run_dir']}")
        aggregate = result["aggregate"]
        print()
        print(aggregate["table"])
        print(f"aggregate: {aggregate['dir']}")
    else:
        summary = runner.benchmark(resume=args.resume)
        print(f"seed {summary['seed']}: final greedy return {summary['final_test_return']:.3f}, "
              f"best {summary['best_test_return']:.3f} at env step {summary['best_env_step']}, "
              f"{summary['env_steps']} env steps in {summary['wall_time']:.1f} s")
        print(f"results: {summary['run_dir']}")
    return 0


def _check_backend_options(args: argparse.Namespace) -> None:
    if args.backend != "ray" and (args.address or args.sync_results):
        raise UsageError("--address and --sync-results are for --backend ray")


def _check_vectorize_seeds(args: argparse.Namespace) -> None:
    if args.vectorize_seeds < 1:
        raise UsageError(f"--vectorize-seeds must be at least 1, got {args.vectorize_seeds}")
    if args.vectorize_seeds > 1 and (args.workers != 1 or args.backend != "local"):
        raise UsageError("--vectorize-seeds runs its seeds in one local process; it does not "
                         "combine with --workers or --backend ray")


def _backend(args: argparse.Namespace, runs: int) -> Any:
    """The backend that ``--backend``, ``--workers``, ``--address``, ``--sync-results``,
    ``--vectorize-seeds`` ask for."""
    from xwq.runners.backends import make_backend

    _check_backend_options(args)
    _check_vectorize_seeds(args)
    if args.vectorize_seeds > 1:
        from xwq.runners.vectorized import VectorizedBackend

        return VectorizedBackend(args.vectorize_seeds)
    ray_options = {"sync_results": True} if args.sync_results else {}
    return make_backend(args.backend, runs, args.workers, args.address, **ray_options)


def cmd_sweep(args: argparse.Namespace, overrides: dict) -> int:
    from xwq.runners.grid_file import load_grid_file

    _check_vectorize_seeds(args)
    grid = load_grid_file(args.grid)
    specs = grid.specs(resume=args.resume, overrides=overrides)
    for spec in specs:  # config errors answer before torch and Ray start
        spec.resolve()
    if grid.tune is not None and args.backend == "ray":
        from xwq.runners.tune import run_tune

        if args.sync_results or args.workers != 1:
            raise UsageError(f"{args.grid}: Tune trials write to shared storage and Ray "
                             "places them by ray_num_cpus: drop --sync-results and --workers")
        result = run_tune(grid, address=args.address, resume=args.resume, overrides=overrides,
                          progress=True)
    else:
        from xwq.runners.sweep import Sweep

        if grid.tune is not None:
            print(f"{args.grid}: 'tune' applies to --backend ray; running the grid locally")
        result = Sweep(specs, _backend(args, len(specs))).run()
    for run in result["runs"]:
        summary = run.summary
        print(f"{run.spec}: final {summary['final_test_return']:.3f}, best "
              f"{summary['best_test_return']:.3f}, {summary['env_steps']} env steps, "
              f"{summary['wall_time']:.1f} s -> {run.run_dir}")
    for label, aggregate in result["aggregates"].items():
        print(f"\n{label}\n{aggregate['table']}aggregate: {aggregate['dir']}")
    for line in result.get("notes", []):
        print(line)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from xwq.runners import plot_results

    report = plot_results(args.dirs, out_dir=args.out, title=args.title)
    print(report["table"])
    for kind, path in report["files"].items():
        print(f"{kind}: {path}")
    return 0


def _os_error_line(error: OSError) -> str:
    """One line for a failed file operation: what failed, on which path, and a hint."""
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    reason = error.strerror or type(error).__name__
    hints = {errno.ENOSPC: "free some space or point log_dir/results_dir/model_dir elsewhere",
             errno.EROFS: "point log_dir/results_dir/model_dir at a writable folder",
             errno.EACCES: "check the permissions, or point the run's folders elsewhere",
             errno.EPERM: "check the permissions, or point the run's folders elsewhere",
             errno.ENOTDIR: "a part of that path is a file, not a folder",
             errno.EISDIR: "that is a folder; give a file"}
    hint = hints.get(error.errno or 0, "")
    return f"{reason}: {paths or '(no path)'}" + (f" ({hint})" if hint else "")


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xwq`` command; returns the exit status (0 ok, 1 training failed or out of
    memory, 2 user error, 130 interrupted).

    Errors a user can fix (:class:`xwq.XwqError`: config, names, env mismatch, checkpoints,
    files; a missing optional package's ImportError; a failed file operation: disk full,
    read-only, permissions, not a directory) print one line and exit 2. Anything else is a bug
    and keeps its traceback; ``--debug`` shows the traceback of every error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    command = f"xwq {args.command}"
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        if args.command == "plot":
            return cmd_plot(args)
        overrides = parse_set(args.set)
        commands = {"train": cmd_train, "test": cmd_test, "benchmark": cmd_benchmark,
                    "sweep": cmd_sweep}
        return commands[args.command](args, overrides)
    except (KeyboardInterrupt, SystemExit) as error:
        # SIGTERM: our handler, or the seed workers' backend (SystemExit(128 + SIGTERM))
        terminated = str(error) == "SIGTERM" or (isinstance(error, SystemExit)
                                                and error.code == EXIT_TERMINATED)
        if isinstance(error, SystemExit) and not terminated:
            raise
        print(f"{command}: {'terminated (SIGTERM)' if terminated else 'interrupted'}"
              + ("; continue with --resume auto" if args.command in ("train", "benchmark")
                 else ""), file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except (XwqError, ImportError, OSError, MemoryError, FloatingPointError) as error:
        if args.debug:
            raise
        if isinstance(error, XwqError | ImportError):  # one line, even for a list of problems
            message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
            message, status = message.replace("(from override)", "(from --set)"), None
        elif isinstance(error, OSError):
            message, status = _os_error_line(error), None
        elif isinstance(error, MemoryError):
            message, status = ("out of memory; lower buffer_size, batch_size or parallels "
                               f"({error})" if str(error) else "out of memory; lower "
                               "buffer_size, batch_size or parallels"), EXIT_TRAINING_FAILED
        else:  # NonFiniteLossError: the run diverged (its message says where and what to try)
            print(f"{command}: {error}", file=sys.stderr)
            return EXIT_TRAINING_FAILED
        print(f"{command}: error: {message}", file=sys.stderr)
        return status or EXIT_USER_ERROR
    except Exception as error:
        # raised in the user's env or factory: one line saying where (with xwq's note on where
        # training stopped); an error raised inside xwq is a bug and keeps its traceback
        if args.debug or not raised_by_user_code(error):
            raise
        notes = " ".join(" ".join(note.split()) for note in getattr(error, "__notes__", []))
        print(f"{command}: error: your code raised {error_line(error)}"
              + (f" {notes}" if notes else "") + "; --debug shows the traceback",
              file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
