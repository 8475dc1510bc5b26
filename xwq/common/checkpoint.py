"""Atomic, code-free checkpoint files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from xwq.errors import MissingFileError


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
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def safe_load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Load a file written by :func:`atomic_save` without executing code from it."""
    if not Path(path).is_file():
        raise MissingFileError(f"no model or checkpoint file at {path}")
    return torch.load(path, map_location=device, weights_only=True)
