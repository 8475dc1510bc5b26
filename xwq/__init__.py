"""xwq: Weighted QMIX and the QMIX family for cooperative multi-agent RL, in PyTorch.

The public names below load on first use (PEP 562), so ``import xwq`` — and the ``xwq`` command's
``--help`` and its user errors — cost milliseconds, not torch's import. Looking up any registry
(``xwq.REGISTRY_ENV``, ...) or ``get_runner`` imports the components, which registers the
built-in agents, learners, policies, representations and environments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xwq.errors import (
    CheckpointError,
    ConfigError,
    EnvMismatchError,
    MissingFileError,
    UnknownNameError,
    UsageError,
    XwqError,
)

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "Config": "xwq.common.config",
    "get_configs": "xwq.common.config",
    "get_runner": "xwq.get_runner",
    "setup_process": "xwq.common.process",
    "MultiAgentEnv": "xwq.environment",
    "PettingZooEnv": "xwq.environment",
    "check_env": "xwq.environment",
    "make_envs": "xwq.environment",
    "register_env": "xwq.environment",
    "Registry": "xwq.registry",
    "REGISTRY_AGENT": "xwq.registry",
    "REGISTRY_ENV": "xwq.registry",
    "REGISTRY_LEARNER": "xwq.registry",
    "REGISTRY_NATIVE_ENV": "xwq.registry",
    "REGISTRY_POLICY": "xwq.registry",
    "REGISTRY_REPRESENTATION": "xwq.registry",
    "REGISTRY_WEIGHTING": "xwq.registry",
    "Runner": "xwq.runners",
    "Experiment": "xwq.runners",
    "RunSpec": "xwq.runners",
    "Sweep": "xwq.runners",
    "grid": "xwq.runners",
}

#: subpackages reachable as attributes before anything imported them (``xwq.agents....``)
_COMPONENTS_SUBMODULES = ("agents", "learners", "policies", "representations", "environment",
                          "runners", "common", "registry", "cli")


if TYPE_CHECKING:  # what a type checker and an IDE see
    from xwq.common.config import Config, get_configs
    from xwq.common.process import setup_process
    from xwq.environment import MultiAgentEnv, PettingZooEnv, check_env, make_envs, register_env
    from xwq.get_runner import get_runner
    from xwq.registry import (
        REGISTRY_AGENT,
        REGISTRY_ENV,
        REGISTRY_LEARNER,
        REGISTRY_NATIVE_ENV,
        REGISTRY_POLICY,
        REGISTRY_REPRESENTATION,
        REGISTRY_WEIGHTING,
        Registry,
    )
    from xwq.runners import Experiment, Runner, RunSpec, Sweep, grid


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in _COMPONENTS_SUBMODULES:
            return importlib.import_module(f"xwq.{name}")
        raise AttributeError(f"module 'xwq' has no attribute {name!r}")
    importlib.import_module("xwq.components")  # registers the built-in components
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "REGISTRY_AGENT", "REGISTRY_ENV", "REGISTRY_LEARNER", "REGISTRY_NATIVE_ENV",
    "REGISTRY_POLICY", "REGISTRY_REPRESENTATION", "REGISTRY_WEIGHTING", "CheckpointError",
    "Config", "ConfigError",
    "EnvMismatchError", "Experiment", "MissingFileError", "MultiAgentEnv", "PettingZooEnv",
    "Registry", "RunSpec", "Runner", "Sweep", "UnknownNameError", "UsageError", "XwqError",
    "__version__", "check_env", "get_configs", "get_runner", "grid", "make_envs", "register_env",
    "setup_process",
]
