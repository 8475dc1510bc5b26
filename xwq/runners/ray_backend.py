"""The Ray backend of a sweep: each run a Ray task, on this machine or on a Ray cluster.

Each :class:`~xwq.runners.sweep.RunSpec` becomes one Ray task that calls
:func:`xwq.runners.sweep.execute` — what the serial and process backends call — holding
``ray_num_cpus`` CPUs and ``ray_num_gpus`` GPUs (config keys, or the backend's arguments) and
running one torch thread per CPU it holds. Every random source is seeded from the spec, so a run
gives the same numbers on a Ray worker as in this process (on CPU).

Where the results go:

- shared storage (the default): the workers write where ``results_dir`` (``log_dir``,
  ``model_dir``) points, made absolute on the driver; that path must exist on every node (NFS,
  a cluster file system, or a one-machine cluster);
- ``sync_results=True``: a worker writes into a scratch folder of its own node
  (``<tmp>/xwq-ray/<key>/``), and the task returns the run folder packed as tar bytes; the driver
  unpacks it at the same place under its own ``results_dir`` (paths in ``summary.json`` and the
  dirs in ``config.yaml`` rewritten to the driver's), so the layout is that of a local run.

Retries: a run whose worker dies (process killed, out of memory, node lost) is submitted again,
up to ``max_retries`` times, with ``resume="auto"``, so it continues from its own newest
checkpoint (exactly, with ``save_buffer: true``) instead of from zero. The driver resubmits it
rather than Ray (whose own retry would run the same arguments again: a new run folder). An error
raised by the run itself (a config error, a diverged loss) is not retried: it stops the sweep.

Ray is imported only when a backend is created: ``import xwq`` never imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from xwq.errors import MissingPackageError, UsageError
from xwq.runners.process_backend import SeedFailed
from xwq.runners.results import write_json
from xwq.runners.run_folder import CONFIG_FILE, SUMMARY_FILE, newest_matching_run, run_subdir
from xwq.runners.sweep import RunResult, RunSpec, execute

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "xwq[ray]"'
#: where a run writes: the config keys a backend rewrites, and their folder in a packed run
DIR_KEYS = {"results_dir": "results", "log_dir": "logs", "model_dir": "models"}


def import_ray() -> Any:
    """The ``ray`` module, or a MissingPackageError (an ImportError) with the pip command."""
    try:
        import ray
    except ImportError as error:
        raise MissingPackageError(
            f"the Ray backend needs Ray, which is not installed ({error}); install it with: "
            f"{INSTALL_HINT}") from error
    return ray


def _lost_worker_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """The errors that mean the run's process or node went away (not an error of the run)."""
    names = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OutOfMemoryError",
             "ObjectLostError")
    return tuple(getattr(ray.exceptions, name) for name in names
                 if hasattr(ray.exceptions, name))


# --- what a task carries and does -----------------------------------------------------------
@dataclass(frozen=True)
class SyncPlan:
    """``sync_results`` mode: the worker's scratch root (``<scratch>/results`` etc. are the run's
    dirs) and, when resuming, the driver's newest matching run packed (None: nothing to ship)."""

    scratch: str
    shipped: bytes | None = None


def run_task(spec: RunSpec, sync: SyncPlan | None = None) -> tuple[RunResult, bytes | None]:
    """What a Ray task runs: :func:`execute` on ``spec``; with ``sync``, the run folder (and the
    model folder of a ``train`` run) packed for the driver, then removed from the scratch."""
    if sync is None:
        return execute(spec), None
    scratch = Path(sync.scratch)
    if sync.shipped is not None:
        unpack(sync.shipped, {name: scratch / name for name in DIR_KEYS.values()},
               replace=False)
    result = execute(spec)
    folders = _run_folders(result, scratch)
    packed = pack(folders)
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    return result, packed


def _run_folders(result: RunResult, scratch: Path) -> dict[str, Path]:
    """``{arcname: folder}`` of a finished run under the scratch root."""
    run_dir = Path(result.run_dir)
    folders = {str(run_dir.relative_to(scratch)): run_dir}
    model = result.summary.get("final_model")
    if result.spec.kind == "train" and model:
        model_dir = Path(model).parent
        folders[str(model_dir.relative_to(scratch))] = model_dir
    return folders


def pack(folders: dict[str, Path]) -> bytes:
    """The folders as an uncompressed tar (checkpoints and models hardly compress)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for arcname, folder in folders.items():
            archive.add(folder, arcname=arcname)
    return buffer.getvalue()


def unpack(data: bytes, roots: dict[str, Path], replace: bool = True) -> None:
    """Extract a :func:`pack` archive: a member ``<name>/<path>`` goes to ``roots[name]/<path>``
    (``name`` one of ``results``, ``logs``, ``models``). With ``replace=False`` files that exist
    are kept (a newer copy of the run on this node)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        for member in archive.getmembers():
            top, _, rest = member.name.partition("/")
            if top not in roots:
                raise UsageError(f"unexpected entry {member.name!r} in a packed run")
            target = roots[top] / rest
            if not replace and target.exists() and not member.isdir():
                continue
            member = member.replace(name=rest) if rest else member.replace(name=".")
            archive.extract(member, roots[top], filter="data")


# --- the backend -----------------------------------------------------------------------------
@dataclass
class RayTask:
    """One spec as the driver tracks it."""

    spec: RunSpec  # as given (its result carries it)
    remote_spec: RunSpec  # with the worker's threads, dirs and no progress bar
    dirs: dict[str, Path]  # the driver's absolute results_dir, log_dir, model_dir
    scratch: Path | None  # sync_results: the workers' scratch root
    attempts: int = 0


class RayBackend:
    """Runs each spec as a Ray task (see the module docstring for storage and retries).

    Args:
        address: None (connect to the cluster in ``RAY_ADDRESS``, else start Ray here),
            ``"auto"`` (the cluster this machine belongs to: ``ray start --head`` ran here) or
            ``"HOST:PORT"`` of a head node. Ignored when Ray is already initialised in this
            process (``ray.init`` called by the user): the backend then uses that session.
        num_cpus_per_run: CPUs per run (default: each run's config key ``ray_num_cpus``); the
            run uses as many torch threads (at least one).
        num_gpus_per_run: GPUs per run (default: the config key ``ray_num_gpus``).
        max_retries: how often a run whose worker died is started again (resuming its newest
            checkpoint) before the sweep fails.
        sync_results: pack each finished run on its worker and unpack it under this machine's
            ``results_dir`` (for workers without a shared file system).
        init_kwargs: more keyword arguments for ``ray.init`` (e.g. ``runtime_env``,
            ``include_dashboard``) when the backend starts or joins Ray itself.
    """

    task = staticmethod(run_task)  # the function each Ray task runs

    def __init__(self, address: str | None = None, num_cpus_per_run: float | None = None,
                 num_gpus_per_run: float | None = None, max_retries: int = 3,
                 sync_results: bool = False, init_kwargs: dict[str, Any] | None = None) -> None:
        self.ray = import_ray()
        if num_cpus_per_run is not None and not num_cpus_per_run > 0:
            raise UsageError(f"num_cpus_per_run must be > 0, got {num_cpus_per_run!r}")
        if num_gpus_per_run is not None and not num_gpus_per_run >= 0:
            raise UsageError(f"num_gpus_per_run must be >= 0, got {num_gpus_per_run!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise UsageError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.address = address
        self.num_cpus_per_run = num_cpus_per_run
        self.num_gpus_per_run = num_gpus_per_run
        self.max_retries = max_retries
        self.sync_results = bool(sync_results)
        self.init_kwargs = dict(init_kwargs or {})

    # --- what a Sweep calls -----------------------------------------------------------------
    def run(self, specs: Sequence[RunSpec], progress: bool = True) -> list[RunResult]:
        ray = self.ray
        started = self.connect()
        try:
            tasks = [self.prepare(spec) for spec in specs]
            remote = ray.remote(self.task)
            lost = _lost_worker_errors(ray)
            pending: dict[Any, int] = {}

            def submit(index: int, resume: str | None) -> None:
                task = tasks[index]
                spec = dataclasses.replace(task.remote_spec, resume=resume)
                config = task.spec.resolve()
                options = {"num_cpus": self.cpus(config), "num_gpus": self.gpus(config),
                           "max_retries": 0,  # retried here, with resume="auto"
                           "name": f"xwq {spec.kind} {spec}"}
                ref = remote.options(**options).remote(spec, self._sync_plan(task, config,
                                                                             resume))
                pending[ref] = index

            for index, task in enumerate(tasks):
                submit(index, task.spec.resume)
            results: dict[int, RunResult] = {}
            first = specs[0]
            desc = f"{first.method} {first.env}/{first.env_id}: runs on Ray"
            with tqdm(total=len(specs), unit="run", desc=desc, disable=not progress) as bar:
                try:
                    while pending:
                        (ref,), _ = ray.wait(list(pending), num_returns=1)
                        index = pending.pop(ref)
                        task = tasks[index]
                        try:
                            result, packed = ray.get(ref)
                        except lost as error:
                            if task.attempts >= self.max_retries:
                                raise SeedFailed(
                                    f"{task.spec}: its Ray worker died {task.attempts + 1} "
                                    f"times ({type(error).__name__}); its checkpoints are "
                                    "kept: rerun with resume='auto'") from error
                            task.attempts += 1
                            logger.warning("%s: its Ray worker died (%s); retry %d of %d, "
                                           "resuming from its newest checkpoint", task.spec,
                                           type(error).__name__, task.attempts,
                                           self.max_retries)
                            submit(index, "auto")
                            continue
                        except ray.exceptions.RayTaskError as error:
                            raise _cause(error, task.spec) from None
                        results[index] = self._land(task, result, packed)
                        bar.update(1)
                        logger.info("%s finished: %s", task.spec, results[index].run_dir)
                except BaseException as error:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    if pending:  # their processes gone (folder locks free) before returning
                        ray.wait(list(pending), num_returns=len(pending), timeout=60)
                        logger.warning("stopped %d unfinished run(s) (%s); their checkpoints "
                                       "are kept: rerun with resume='auto'", len(pending),
                                       type(error).__name__)
                    raise
            return [results[index] for index in range(len(specs))]
        finally:
            if started:
                ray.shutdown()

    # --- helpers ----------------------------------------------------------------------------
    def connect(self) -> bool:
        """Initialise Ray unless the caller did; True when this call started the session."""
        if self.ray.is_initialized():
            return False
        logger.info("connecting to Ray (address %s)", self.address or "local or RAY_ADDRESS")
        self.ray.init(address=self.address, **self.init_kwargs)
        return True

    def cpus(self, config: Any) -> float:
        return float(self.num_cpus_per_run if self.num_cpus_per_run is not None
                     else config.ray_num_cpus)

    def gpus(self, config: Any) -> float:
        return float(self.num_gpus_per_run if self.num_gpus_per_run is not None
                     else config.ray_num_gpus)

    def prepare(self, spec: RunSpec) -> RayTask:
        config = spec.resolve()
        dirs = {key: Path(getattr(config, key)).resolve() for key in DIR_KEYS}
        scratch = _scratch_root(dirs) if self.sync_results else None
        where = ({key: str(scratch / name) for key, name in DIR_KEYS.items()} if scratch
                 else {key: str(path) for key, path in dirs.items()})
        threads = max(1, math.floor(self.cpus(config)))
        remote_spec = spec.with_overrides(threads=threads, progress_bar=False, **where)
        if spec.config_path is not None:  # read where the run executes: not relative to here
            remote_spec = dataclasses.replace(remote_spec,
                                              config_path=str(Path(spec.config_path).resolve()))
        return RayTask(spec, remote_spec, dirs, scratch)

    def _sync_plan(self, task: RayTask, config: Any, resume: str | None) -> SyncPlan | None:
        """None on shared storage; else the scratch root, with this machine's newest matching
        run packed when the sweep resumes (a rerun of an interrupted sweep). A retry of a new
        run ships nothing: its checkpoints are on the node it ran on, not here."""
        if task.scratch is None:
            return None
        shipped = None
        if resume == "auto" and task.spec.resume == "auto":
            key = "results_dir" if task.spec.kind == "benchmark" else "log_dir"
            run = newest_matching_run(run_subdir(task.dirs[key], config), config)
            if run is not None:
                shipped = pack({str(Path(DIR_KEYS[key]) / run.relative_to(task.dirs[key])):
                                run})
        return SyncPlan(str(task.scratch), shipped)

    def _land(self, task: RayTask, result: RunResult, packed: bytes | None) -> RunResult:
        """The result as this machine sees it: the original spec, and (sync_results) the run
        unpacked here with its paths rewritten."""
        if packed is None:
            return RunResult(task.spec, result.run_dir, result.summary)
        roots = {name: task.dirs[key] for key, name in DIR_KEYS.items()}
        unpack(packed, roots)
        moves = {str(task.scratch / name): str(task.dirs[key]) for key, name in DIR_KEYS.items()}

        def here(value: Any) -> Any:
            if isinstance(value, str):
                for old, new in moves.items():
                    if value == old or value.startswith(old + os.sep):
                        return new + value[len(old):]
            if isinstance(value, list):
                return [here(item) for item in value]
            return value

        summary = {key: here(value) for key, value in result.summary.items()}
        run_dir = Path(summary["run_dir"])
        if (run_dir / SUMMARY_FILE).is_file():
            write_json(summary, run_dir / SUMMARY_FILE)
        config_path = run_dir / CONFIG_FILE
        if config_path.is_file():
            saved = yaml.safe_load(config_path.read_text())
            saved.update({key: here(saved[key]) for key in DIR_KEYS if key in saved})
            config_path.write_text(yaml.safe_dump(saved, sort_keys=False))
        return RunResult(task.spec, str(run_dir), summary)


def _scratch_root(dirs: dict[str, Path]) -> Path:
    """A worker's scratch folder for runs of this driver's folders: the same on every attempt,
    so a retry on the same node finds the killed attempt's checkpoints."""
    key = hashlib.sha256(
        "|".join([socket.gethostname(), *(str(dirs[k]) for k in DIR_KEYS)]).encode()
    ).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "xwq-ray" / key


def _cause(error: Any, spec: RunSpec) -> BaseException:
    """The exception the run raised (a config error stays a ConfigError), with the remote
    traceback as a note."""
    cause = getattr(error, "cause", None)
    if not isinstance(cause, BaseException):
        return error
    cause.add_note(f"(in the {spec.kind} run {spec} on Ray; its traceback:)\n{error}")
    logger.error("%s failed: %s: %s", spec, type(cause).__name__, cause)
    return cause


__all__ = ["RayBackend", "SyncPlan", "import_ray", "pack", "run_task", "unpack"]
