"""Several benchmark seeds at once, each in its own process.

A run uses ``threads`` torch threads (one by default), so ``workers`` processes keep that many
cores busy, and N seeds on W free cores take about ⌈N / W⌉ times one seed's wall time. Each
process runs exactly what :meth:`Runner.benchmark` runs for that seed one after another (every
random source is seeded from the run's seed), so the results are the same to the bit on CPU.

On Linux CPU runs the workers are forked, so an env registered in this process is registered
there too. Elsewhere, and whenever CUDA is in use (CUDA cannot be used again in a forked
process), they are spawned and re-import your script: register custom envs at import time (not
under ``if __name__ == "__main__":``), and call ``benchmark()`` under that guard.
"""

from __future__ import annotations

import logging
import multiprocessing
import operator
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def start_method(config: dict) -> str:
    """``fork`` for CPU runs on Linux (registrations carry over), else ``spawn``."""
    import torch

    uses_cuda = torch.device(config["device"]).type == "cuda" or torch.cuda.is_initialized()
    return "fork" if sys.platform.startswith("linux") and not uses_cuda else "spawn"


class _SeedBar(tqdm):
    """The parent's bar, without tqdm's monitor thread: forking a process that runs other
    threads can leave their locks held in the child (and Python 3.12+ warns about it)."""

    monitor_interval = 0


class SeedFailed(RuntimeError):
    """A seed's run failed with an exception that could not be sent back as it was."""


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives a round trip through pickle, else a SeedFailed saying what it
    was (an exception whose ``__init__`` needs other arguments cannot be rebuilt)."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return SeedFailed(f"{type(error).__name__}: {error}")


def _benchmark_seed(conn: Connection, config: dict, seed: int, resume: str | None) -> None:
    """Worker: one seed's benchmark; sends ``(True, summary)`` or
    ``(False, (exception, formatted traceback))``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler is not for workers
    try:
        from xwq.get_runner import _default_logging
        from xwq.runners.runner import Runner

        _default_logging()  # spawned workers start with no logging set up
        runner = Runner.from_config(config, seed=seed, progress_bar=False)
        conn.send((True, runner._benchmark_one(resume)))
    except BaseException as error:
        conn.send((False, (_portable(error), traceback.format_exc())))
    finally:
        conn.close()


def _raise_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def benchmark_seeds(config: dict, seeds: Sequence[int], resume: str | None, workers: int,
                    progress: bool = True) -> list[dict]:
    """Run ``seeds`` with at most ``workers`` processes at a time; their summaries in the
    order of ``seeds``. The first failure stops the others (their checkpoints stay) and is
    raised here after a log line naming its seed. SIGTERM and Ctrl-C stop the workers too."""
    method = start_method(config)
    context = multiprocessing.get_context(method)
    pending, running, summaries = list(seeds), {}, {}
    desc = f"{config['method']} {config['env_name']}/{config['env_id']}: seeds"
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_sigterm) if in_main_thread else None
    failed = None
    with _SeedBar(total=len(pending), unit="seed", desc=desc, disable=not progress) as bar:
        try:
            while pending or running:
                while pending and len(running) < workers:
                    seed = pending.pop(0)
                    receive, send = context.Pipe(duplex=False)
                    process = context.Process(target=_benchmark_seed, name=f"xwq-seed-{seed}",
                                              args=(send, config, seed, resume))
                    process.start()
                    send.close()
                    running[receive] = (process, seed)
                    logger.info("benchmark seed %d started (process %d)", seed, process.pid)
                for conn in wait(list(running)):
                    process, seed = running.pop(conn)
                    ok, payload = _receive(conn, process, seed, method)
                    if not ok:
                        failed = seed
                        error, trace = payload
                        logger.error("benchmark seed %d failed: %s: %s", seed,
                                     type(error).__name__, error)
                        logger.debug("traceback of seed %d:\n%s", seed, trace)
                        if hasattr(error, "add_note"):  # Python 3.11+
                            error.add_note(f"(in the benchmark run of seed {seed}; its "
                                           f"traceback:)\n{trace}")
                        raise error
                    summaries[seed] = payload
                    bar.update(1)
                    logger.info("benchmark seed %d finished: final greedy return %.3f", seed,
                                payload["final_test_return"])
        except BaseException as error:
            for process, _ in running.values():
                process.terminate()
            reason = (f"seed {failed} failed" if failed is not None
                      else f"the benchmark was stopped: {type(error).__name__}")
            for process, seed in running.values():
                process.join()
                logger.warning("benchmark seed %d stopped (%s); its checkpoints are kept",
                               seed, reason)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return [summaries[seed] for seed in seeds]


def _receive(conn: Connection, process: Any, seed: int, method: str) -> tuple[bool, Any]:
    """The worker's message; a worker that died or sent something unreadable is a failure."""
    try:
        message = conn.recv()
    except Exception as error:  # EOFError: it died; anything else: it sent garbage
        message = error
    finally:
        conn.close()
    process.join()
    if not isinstance(message, Exception):
        return message
    hint = (" With spawned workers (macOS, Windows, CUDA) a script must call benchmark() "
            "under `if __name__ == \"__main__\":`." if method == "spawn" else "")
    reason = ("died without a result" if isinstance(message, EOFError) else
              f"sent a result that could not be read ({type(message).__name__}: {message})")
    return False, (SeedFailed(
        f"the process running seed {seed} {reason} (exit code {process.exitcode}); its "
        f"checkpoints are kept: rerun with resume='auto'.{hint}"), "")


def check_workers(workers: Any, seeds: Sequence[int] | None) -> int:
    """``workers`` as a positive int (numpy ints too); more than one needs ``seeds``."""
    try:
        count = operator.index(workers)
    except TypeError:
        count = 0
    if isinstance(workers, bool) or count < 1:
        raise ValueError(f"workers must be a positive integer (processes running seeds at "
                         f"once), got {workers!r}")
    if count > 1 and not seeds:
        raise ValueError("workers > 1 runs several seeds at once: give seeds too (--seeds "
                         "on the command line)")
    return count
