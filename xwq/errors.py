"""The errors xwq raises for things a user can fix, all under one base class, :class:`XwqError`.

A user error says what was wrong, where (config key, file, agent, env) and how to fix it. The
``xwq`` command prints an ``XwqError`` as one line and exits with status 2; anything else is a
bug or a failure of the run and keeps its traceback.

Each class also derives from the built-in exception a caller would expect (``ValueError`` for a
bad value, ``KeyError`` for an unknown name, ``FileNotFoundError`` for a missing file, ...), so
``except ValueError`` keeps working. This module imports nothing heavy: the CLI can use it
without importing torch.
"""

from __future__ import annotations


class XwqError(Exception):
    """Base class of every error a user can fix (bad config, name, env, file or checkpoint)."""


class ConfigError(XwqError, ValueError):
    """A configuration key that is unknown, wrongly typed, out of range or has no effect."""


class UnknownNameError(XwqError, KeyError):
    """A name that is not in a registry (method, env, agent, learner, ...)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class EnvMismatchError(XwqError, ValueError):
    """A custom environment whose spaces and returns do not agree."""


class CheckpointError(XwqError, ValueError):
    """A run file that cannot be used (checkpoint, model, log): damaged, holding code, not
    xwq's, or from another method or env."""


class MissingFileError(XwqError, FileNotFoundError):
    """A file or folder the user named (config, model, checkpoint, results) does not exist."""


class MissingPackageError(XwqError, ImportError):
    """An optional package or program (Ray, an env's simulator) is not installed; the message
    says how to install it (the pip command, and any binary or data it needs)."""


class UsageError(XwqError, ValueError):
    """A call or command line that asks for something contradictory or malformed."""


__all__ = ["CheckpointError", "ConfigError", "EnvMismatchError", "MissingFileError",
           "MissingPackageError", "UnknownNameError", "UsageError", "XwqError"]
