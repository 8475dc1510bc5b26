"""Several benchmark seeds at once, each in its own process.

A run uses ``threads`` torch threads (one by default), so ``workers`` processes keep that many
cores busy, and N seeds on W free cores take about ⌈N / W⌉ times one seed's wall time. Each
process runs exactly what :meth:`Runner.benchmark` runs for that seed one after another (every
random source is seeded from the run's seed), so the results are the same to the bit on CPU.

On Linux CPU runs the workers are forked, so an env registered in this process is registered
there too. Elsewhere, and whenever CUDA is in use (CUDA cannot be used again in a forked
process), they are spawned and re-import your script: register custom envs at import time (not
under ``if __name__ == "__main__":``).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import sys
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


def _benchmark_seed(conn: Connection, config: dict, seed: int, resume: str | None) -> None:
    """Worker: one seed's benchmark; sends ``(True, summary)`` or ``(False, exception)``."""
    try:
        from xwq.runners.runner import Runner

        runner = Runner.from_config(config, seed=seed, progress_bar=False)
        conn.send((True, runner._benchmark_one(resume)))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes
            error = RuntimeError(f"{type(error).__name__}: {error}")
        conn.send((False, error))
    finally:
        conn.close()


def benchmark_seeds(config: dict, seeds: Sequence[int], resume: str | None, workers: int,
                    progress: bool = True) -> list[dict]:
    """Run ``seeds`` with at most ``workers`` processes at a time; their summaries in the
    order of ``seeds``. The first failure stops the others (their checkpoints stay) and is
    raised here, naming the seed."""
    context = multiprocessing.get_context(start_method(config))
    pending, running, summaries = list(seeds), {}, {}
    desc = f"{config['method']} {config['env_name']}/{config['env_id']}: seeds"
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
                    try:
                        ok, payload = conn.recv()
                    except EOFError:
                        process.join()
                        ok, payload = False, RuntimeError(
                            f"the process running seed {seed} died without a result (exit "
                            f"code {process.exitcode}); its checkpoints are kept: rerun with "
                            "resume='auto'")
                    conn.close()
                    process.join()
                    if not ok:
                        payload.add_note(f"(in the benchmark run of seed {seed})")
                        raise payload
                    summaries[seed] = payload
                    bar.update(1)
                    logger.info("benchmark seed %d finished: final greedy return %.3f", seed,
                                payload["final_test_return"])
        except BaseException as error:
            for process, _ in running.values():
                process.terminate()
            for process, seed in running.values():
                process.join()
                logger.warning("benchmark seed %d stopped: %s", seed, type(error).__name__)
            raise
    return [summaries[seed] for seed in seeds]


def check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer (processes running seeds at "
                         f"once), got {workers!r}")
    return workers
