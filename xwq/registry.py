"""One small registry class behind every REGISTRY_* table.

A registry maps a name to a class or factory. Names are added with a decorator
(``@REGISTRY_ENV.register("my_env")``) or by assignment (``REGISTRY_ENV["my_env"] = MyEnv``),
as in XuanCe. An unknown name raises :class:`UnknownNameError` (a ``KeyError``) that lists the
choices and suggests the closest one.

Entries whose code needs an optional package are registered *lazily* with
:meth:`Registry.register_lazy`: the import runs when the entry is first looked up, so a missing
package raises its real ``ImportError`` (with the ``pip install`` line) at that moment, never a
string stored in the table.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

from xwq.errors import UnknownNameError, UsageError


def closest(name: str, choices: list[str]) -> str:
    """' Did you mean 'x'?' for the closest of ``choices``, or '' when nothing is close."""
    lowered = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean '{lowered[match[0]]}'?" if match else ""


def require_choice(kind: str, name: str, choices: Sequence[str], where: str = "",
                   hint: str = "") -> None:
    """Raise :class:`UnknownNameError` ("unknown <kind> 'x'<where>; choose one of [...].
    <hint> Did you mean ...?") unless ``name`` is one of ``choices``."""
    if name in choices:
        return
    choices = sorted(choices)
    hint = f" {hint}" if hint else ""
    raise UnknownNameError(f"unknown {kind} {name!r}{where}; choose one of {choices}.{hint}"
                           f"{closest(str(name), choices)}")


class _Lazy:
    """A registry entry resolved on first lookup: ``module:attribute``, plus an install hint."""

    def __init__(self, target: str, install: str | None) -> None:
        self.target = target
        self.install = install

    def load(self) -> Any:
        module_name, _, attribute = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if self.install is None:
                raise
            raise ImportError(
                f"{error}. This entry needs an optional package: {self.install}"
            ) from error
        return getattr(module, attribute)


class Registry(MutableMapping):
    """A named table of classes or factories.

    >>> REGISTRY = Registry("env")
    >>> @REGISTRY.register("toy")
    ... def make_toy(env_id, **kwargs): ...
    >>> REGISTRY["toy"] is make_toy
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: ``@registry.register("name")``."""

        def decorate(obj: Any) -> Any:
            self[name] = obj
            return obj

        return decorate

    def register_lazy(self, name: str, target: str, install: str | None = None) -> None:
        """Register ``"package.module:attribute"``, imported on first lookup."""
        self._entries[name] = _Lazy(target, install)

    def __setitem__(self, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise UsageError(f"{self.kind} registry names must be non-empty strings, got {name!r}")
        self._entries[name] = obj

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str) or name not in self._entries:
            require_choice(self.kind, str(name), list(self._entries))
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            entry = entry.load()
            self._entries[name] = entry
        return entry

    get = __getitem__  # registry.get(name) raises like registry[name]

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"


REGISTRY_ENV = Registry("env")
REGISTRY_REPRESENTATION = Registry("representation")
REGISTRY_POLICY = Registry("policy")
REGISTRY_LEARNER = Registry("learner")
REGISTRY_AGENT = Registry("agent")
REGISTRY_NATIVE_ENV = Registry("native vectorised env")
REGISTRY_WEIGHTING = Registry("weighting")
