"""A run's folder: its name, its lock, finding it again to resume, and what it holds.

Every run gets a new folder ``<root>/<method>/<env>/<env_id>/seed_<seed>_<timestamp>/`` (an
existing one is never reused; ``root`` is ``log_dir`` for ``run()``, ``results_dir`` for
``benchmark()``) holding ``config.yaml``, the logs (``train``/``metrics`` streams as CSV, JSON
lines and TensorBoard events), ``checkpoints/ckpt_<env_steps>.pth`` and, once finished,
``summary.json``. While a process trains in it the folder is locked (``.lock``, an advisory
``flock``): a second process that tries to resume the same run is refused instead of writing
the same rows twice.

Resuming a run (:func:`open_run`) means: find the folder (``resume="auto"``: the newest run of
this method/env/env_id/seed whose config matches, or an explicit checkpoint/run folder), pick its
newest checkpoint, and cut its logs back to the rows they had at that checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from xwq.errors import MissingFileError, UsageError, XwqError
from xwq.runners.checkpoints import config_differences, list_checkpoints

try:  # advisory locks; absent on Windows, where a run folder is simply not locked
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"


class RunInUseError(XwqError, RuntimeError):
    """Another process is training in this run folder."""


def timestamp() -> str:
    """Sortable to the microsecond, so two runs started in the same second never share a name."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def run_subdir(root: str | os.PathLike, config: Any) -> Path:
    """``<root>/<method>/<env>/<env_id>``: where the runs of one configuration live."""
    return Path(root) / config.method / config.env_name / config.env_id


def new_run_dir(root: str | os.PathLike, config: Any, prefix: str | None = None) -> Path:
    """Create a fresh folder ``seed_<seed>_<timestamp>`` (or ``<prefix>_<timestamp>``) under
    :func:`run_subdir`; refuse (FileExistsError) rather than reuse an existing one."""
    name = f"{prefix}_{timestamp()}" if prefix else f"seed_{config.seed}_{timestamp()}"
    path = run_subdir(root, config) / name
    path.mkdir(parents=True, exist_ok=False)
    return path


def read_run_config(run_dir: str | os.PathLike) -> dict | None:
    """The run's ``config.yaml`` as a dict; None when it is missing or damaged (with a warning
    for the damaged case), so one bad folder never blocks finding the others."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        logger.warning("passing over %s: its %s cannot be read (%s)", run_dir, CONFIG_FILE,
                       type(error).__name__)
        return None
    return data if isinstance(data, dict) else None


def read_summary(run_dir: str | os.PathLike) -> dict | None:
    """The run's ``summary.json`` (None while it has not finished)."""
    path = Path(run_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def newest_matching_run(root: str | os.PathLike, config: Any) -> Path | None:
    """The newest run folder ``<root>/seed_<seed>_<timestamp>`` whose config.yaml matches
    ``config`` (up to the keys a resume may change); runs of other experiments with the same
    seed are passed over."""
    runs = sorted(Path(root).glob(f"seed_{config.seed}_*"), key=lambda p: p.name, reverse=True)
    for run in runs:
        saved = read_run_config(run)
        if saved is None:
            continue
        differences = config_differences(saved, config)
        if differences:
            logger.info("resume auto: passing over %s (different config: %s)", run,
                        "; ".join(differences))
            continue
        return run
    return None


# --- logs --------------------------------------------------------------------------------------
def count_log_rows(run_dir: str | os.PathLike) -> dict[str, int]:
    """Rows in each ``<stream>.jsonl`` of the run folder."""
    rows = {}
    for path in Path(run_dir).glob("*.jsonl"):
        with open(path, "rb") as handle:
            rows[path.stem] = sum(1 for line in handle if line.strip())
    return rows


def _keep_lines(path: Path, count: int) -> None:
    if not path.exists():
        return
    if count <= 0:
        path.unlink()
        return
    with open(path, "rb") as handle:
        lines = handle.readlines()[:count]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(b"".join(lines))
    os.replace(temporary, path)


def truncate_logs(run_dir: str | os.PathLike, rows: dict[str, int]) -> None:
    """Cut every stream's ``.jsonl`` and ``.csv`` back to the rows it had at the checkpoint
    (a CSV has one more line: its header). TensorBoard events are left alone: a resumed run writes
    a new event file, and TensorBoard shows the later points for steps logged twice."""
    run_dir = Path(run_dir)
    streams = {p.stem for p in run_dir.glob("*.jsonl")} | {p.stem for p in run_dir.glob("*.csv")}
    for stream in streams:
        count = rows.get(stream, 0)
        _keep_lines(run_dir / f"{stream}.jsonl", count)
        _keep_lines(run_dir / f"{stream}.csv", count + 1 if count else 0)


# --- the lock ----------------------------------------------------------------------------------
class FolderLock:
    """An exclusive advisory lock on ``<run_dir>/.lock`` for as long as a process trains there.

    The kernel drops it when the process dies (even by SIGKILL), so a crashed run never stays
    locked.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._handle: Any = None

    def acquire(self) -> None:
        if fcntl is None or self._handle is not None:
            return
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the lock's lifetime)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunInUseError(
                f"{self.path.parent} is in use by {owner}: one process trains in a run folder "
                "at a time. Wait for it to finish (or stop it), then resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


# --- opening a run -----------------------------------------------------------------------------
@dataclass
class OpenedRun:
    """Where a run continues: its folder, and the checkpoint to load (None: a fresh start), or
    the summary of a matching run that has already finished (then nothing is to be done)."""

    run_dir: Path | None
    checkpoint: Path | None = None
    finished: dict | None = None


def open_run(root: str | os.PathLike, config: Any,
             resume: str | os.PathLike | None) -> OpenedRun:
    """Decide where a run starts: a new folder (``resume=None``, or ``"auto"`` with nothing to
    resume), the newest checkpoint of the newest matching unfinished run (``"auto"``), or the
    given checkpoint file / run folder. Only ``"auto"`` reports a finished run as finished."""
    if resume is None:
        return OpenedRun(new_run_dir(root, config))
    if resume == "auto":
        run = newest_matching_run(run_subdir(root, config), config)
        if run is None:
            logger.info("resume auto: no earlier run of %s %s/%s seed %d under %s; starting a "
                        "new run", config.method, config.env_name, config.env_id, config.seed,
                        run_subdir(root, config))
            return OpenedRun(new_run_dir(root, config))
        summary = read_summary(run)
        if summary is not None and summary["env_steps"] >= config.running_steps:
            logger.info("resume auto: %s already finished (%d env steps)", run,
                        summary["env_steps"])
            return OpenedRun(run, finished=summary)
        checkpoints = list_checkpoints(run)
        if not checkpoints:
            logger.info("resume auto: %s has no checkpoint; starting a new run", run)
            return OpenedRun(new_run_dir(root, config))
        return OpenedRun(run, checkpoints[-1])
    if not isinstance(resume, (str, os.PathLike)):
        raise UsageError(f"resume must be None, 'auto' or a checkpoint path, got {resume!r}")
    path = Path(resume)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise MissingFileError(f"no checkpoint in {path / 'checkpoints'}")
        path = found[-1]
    elif not path.is_file():
        raise MissingFileError(f"no checkpoint file or run folder at {path}")
    return OpenedRun(path.parent.parent, path)
