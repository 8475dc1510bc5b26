"""Atomic, code-free checkpoint files.

Files are written to a temporary name and renamed, so a crash or a full disk never leaves a half
file under the real name, and created with the permissions of any other file the process writes
(``0666`` less the umask), like the logs beside them. They are read with
``torch.load(weights_only=True)``: a file that would run code is refused, and a damaged one (a
copy cut short, random bytes) is reported as damaged — both as a CheckpointError naming the
file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from xwq.errors import CheckpointError, MissingFileError


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A crash mid-write leaves the previous file intact; readers never see a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; match the logs
        os.replace(temporary, path)
    except BaseException as error:
        failure = _write_failure(error, path)  # before the partial file goes: is the disk full?
        if os.path.exists(temporary):
            os.unlink(temporary)
        if failure is None:
            raise
        raise failure from error
    return path


def _write_failure(error: BaseException, path: Path) -> OSError | None:
    """A failed write as an OSError naming ``path`` (torch reports a full disk as a
    RuntimeError: "file write failed", "unexpected pos ..."; a failed write() names no file);
    None for any other error."""
    if isinstance(error, OSError):
        if error.filename is not None:
            return None
        return OSError(error.errno, error.strerror or str(error), str(path))
    if not isinstance(error, RuntimeError):
        return None
    stats = os.statvfs(path.parent)
    if stats.f_bavail * stats.f_frsize < 1 << 20:  # less than 1 MiB left: the disk is full
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if "write" in str(error).lower():
        return OSError(errno.EIO, f"writing failed ({str(error).splitlines()[0]})", str(path))
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Load a file written by :func:`atomic_save` without executing code from it.

    Raises:
        MissingFileError: there is no file at ``path``.
        CheckpointError: the file would run code (refused), or is damaged or not a torch file.
    """
    if Path(path).is_dir():
        raise MissingFileError(f"{path} is a folder, not a model or checkpoint file; give a file "
                               "in it (final_model.pth, best_model.pth or "
                               "checkpoints/ckpt_<env_steps>.pth)")
    if not Path(path).is_file():
        raise MissingFileError(f"no model or checkpoint file at {path}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch's UnpicklingError, zip reader errors, EOFError, ...
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        code = next((line for line in lines if "GLOBAL" in line), None)
        if code is not None:
            raise CheckpointError(
                f"refusing to load {path}: it holds code, not plain data ({code}); xwq reads "
                "models and checkpoints as data only and never runs code from a file") from None
        raise CheckpointError(
            f"refusing to load {path}: it is damaged or not a model/checkpoint file "
            f"({type(error).__name__}: "
            f"{lines[0][:120] if lines else 'empty file'}); it may have been cut short by a "
            "crash, a full disk or a copy: use an older checkpoint or retrain") from None
