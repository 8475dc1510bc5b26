"""Telling the user's errors from xwq's: an exception raised in code that xwq's env layer called
(the user's env or factory, a simulator's package) is the user's, reported in one line; one
raised in xwq itself, or in the array libraries it drives, is a bug and keeps its traceback.
Used by the CLI, and by the subprocess env workers, whose traceback stays in the worker."""

from __future__ import annotations

import traceback
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
#: libraries xwq calls with its own arrays: an error raised in them is xwq's bug, not the user's
_XWQ_LIBRARIES = ("torch", "numpy", "gymnasium")


def error_line(error: BaseException) -> str:
    """``Type: message (raised in FILE:LINE, in FUNCTION)`` on one line (an env worker's: as
    the worker wrote it)."""
    if isinstance(error, EnvWorkerError) and error.user_line is not None:
        return error.user_line
    message = " ".join(str(error).split())
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (raised in {frames[-1].filename}:{frames[-1].lineno}, in {frames[-1].name})" \
        if frames else ""
    return f"{type(error).__name__}: {message}{where}"


def raised_by_user_code(error: BaseException) -> bool:
    """Whether ``error`` was raised in the user's env or factory: in code that xwq's env layer
    (``xwq/environment``: factories, adapters, vectorisation) called and does not own (a file
    outside the xwq package: the user's module or a simulator's package). An error raised in xwq
    itself, in the array libraries it drives, or in code called from elsewhere in xwq is a bug
    and keeps its traceback. An env worker's error (:class:`EnvWorkerError`) is the user's when
    the worker found it so."""
    if isinstance(error, EnvWorkerError):
        return error.user_line is not None
    frames = traceback.extract_tb(error.__traceback__)
    inside = [i for i, frame in enumerate(frames) if _in_folder(frame.filename, _PACKAGE)]
    if not inside or inside[-1] == len(frames) - 1:
        return False
    if not _in_folder(frames[inside[-1]].filename, _PACKAGE / "environment"):
        return False
    callee = Path(frames[inside[-1] + 1].filename).parts
    return not any(library in callee for library in _XWQ_LIBRARIES)


def _in_folder(filename: str, folder: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(folder)
    except ValueError:
        return False
    return True


class EnvWorkerError(RuntimeError):
    """An exception raised in a subprocess env worker, re-raised in the parent: its message
    carries the worker's traceback; ``user_line`` is the one-line report (:func:`error_line`)
    when the worker found it raised by the user's code, else None (an xwq bug)."""

    def __init__(self, message: str, user_line: str | None = None) -> None:
        super().__init__(message)
        self.user_line = user_line
