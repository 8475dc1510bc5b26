"""The local process backend of a sweep: up to ``workers`` runs at once, each in its own process.

A run uses ``threads`` torch threads (one by default), so ``workers`` processes keep that many
cores busy, and N runs on W free cores take about ⌈N / W⌉ times one run's wall time. Each process
calls :func:`xwq.runners.sweep.execute` on its spec, exactly what the serial backend calls (every
random source is seeded from the spec), so the results are the same to the bit on CPU.

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

from xwq.errors import UsageError
from xwq.runners.sweep import RunResult, RunSpec, execute

logger = logging.getLogger(__name__)


def start_method(config: Any) -> str:
    """``fork`` for CPU runs on Linux (registrations carry over), else ``spawn``."""
    import torch

    device = config["device"] if isinstance(config, dict) else config.device
    uses_cuda = torch.device(device).type == "cuda" or torch.cuda.is_initialized()
    return "fork" if sys.platform.startswith("linux") and not uses_cuda else "spawn"


class _SeedBar(tqdm):
    """The parent's bar, without tqdm's monitor thread: forking a process that runs other
    threads can leave their locks held in the child (and Python 3.12+ warns about it)."""

    monitor_interval = 0


class SeedFailed(RuntimeError):
    """A run failed with an exception that could not be sent back as it was, or its process
    died without a result."""


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives a round trip through pickle, else a SeedFailed saying what it
    was (an exception whose ``__init__`` needs other arguments cannot be rebuilt)."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return SeedFailed(f"{type(error).__name__}: {error}")


def _run_in_worker(conn: Connection, spec: RunSpec) -> None:
    """Worker: one spec; sends ``(True, RunResult)`` or
    ``(False, (exception, formatted traceback))``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler is not for workers
    try:
        conn.send((True, execute(spec)))
    except BaseException as error:
        conn.send((False, (_portable(error), traceback.format_exc())))
    finally:
        conn.close()


def _raise_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class ProcessBackend:
    """Up to ``workers`` runs at once, one local process each (forked on Linux CPU runs, else
    spawned). The first failure stops the others (their checkpoints stay) and is raised after a
    log line naming its seed; SIGTERM and Ctrl-C stop the workers too."""

    def __init__(self, workers: int) -> None:
        self.workers = worker_count(workers)

    def run(self, specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]:
        # the workers' bars would interleave: the parent shows one bar over the runs
        specs = [spec.with_overrides(progress_bar=False) for spec in specs]
        method = start_method(specs[0].resolve())
        context = multiprocessing.get_context(method)
        pending, running, results = list(range(len(specs))), {}, {}
        first = specs[0]
        desc = f"{first.method} {first.env}/{first.env_id}: runs"
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_sigterm) if in_main_thread else None
        failed = None
        with _SeedBar(total=len(specs), unit="run", desc=desc, disable=not progress) as bar:
            try:
                while pending or running:
                    while pending and len(running) < self.workers:
                        index = pending.pop(0)
                        spec = specs[index]
                        receive, send = context.Pipe(duplex=False)
                        process = context.Process(target=_run_in_worker,
                                                  name=f"xwq-seed-{spec.seed}",
                                                  args=(send, spec))
                        process.start()
                        send.close()
                        running[receive] = (process, index)
                        logger.info("%s seed %d started (process %d)", spec.kind, spec.seed,
                                    process.pid)
                    for conn in wait(list(running)):
                        process, index = running.pop(conn)
                        spec = specs[index]
                        ok, payload = _receive(conn, process, spec.seed, method)
                        if not ok:
                            failed = spec
                            error, trace = payload
                            logger.error("%s seed %d failed: %s: %s", spec.kind, spec.seed,
                                         type(error).__name__, error)
                            logger.debug("traceback of seed %d:\n%s", spec.seed, trace)
                            if hasattr(error, "add_note"):  # Python 3.11+
                                error.add_note(f"(in the {spec.kind} run of seed {spec.seed}; "
                                               f"its traceback:)\n{trace}")
                            raise error
                        results[index] = payload
                        bar.update(1)
                        logger.info("%s seed %d finished: %s", spec.kind, spec.seed,
                                    payload.run_dir)
            except BaseException as error:
                for process, _ in running.values():
                    process.terminate()
                reason = (f"seed {failed.seed} failed" if failed is not None
                          else f"the {first.kind} was stopped: {type(error).__name__}")
                for process, index in running.values():
                    process.join()
                    logger.warning("%s seed %d stopped (%s); its checkpoints are kept",
                                   specs[index].kind, specs[index].seed, reason)
                raise
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
        return [results[index] for index in range(len(specs))]


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


def worker_count(workers: Any) -> int:
    """``workers`` as a positive int (numpy ints too), or a UsageError."""
    try:
        count = operator.index(workers)
    except TypeError:
        count = 0
    if isinstance(workers, bool) or count < 1:
        raise UsageError(f"workers must be a positive integer (processes running seeds at "
                         f"once), got {workers!r}")
    return count


def check_workers(workers: Any, seeds: Sequence[int] | None) -> int:
    """:func:`worker_count`, and more than one worker needs ``seeds``."""
    count = worker_count(workers)
    if count > 1 and not seeds:
        raise UsageError("workers > 1 runs several seeds at once: give seeds too (--seeds "
                         "on the command line)")
    return count
