"""The Multi-Agent Particle Environments from the ``mpe2`` package, as env ``"mpe"``.

:func:`make_mpe` (``REGISTRY_ENV["mpe"]``) returns an mpe2 PettingZoo ``ParallelEnv`` with
discrete actions, which the PettingZoo adapter turns into a :class:`MultiAgentEnv`. The native
numpy version of ``simple_spread_v3`` (``REGISTRY_NATIVE_ENV["mpe"]``) is in
:mod:`xwq.environment.envs.mpe_native`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from xwq.errors import ConfigError
from xwq.registry import REGISTRY_ENV, require_choice

MPE_SCENARIOS = ("simple_spread_v3", "simple_reference_v3", "simple_speaker_listener_v4")


def import_mpe2_scenario(env_id: str) -> Any:
    """Import ``mpe2.<env_id>``; pygame must not install its signal handlers (Ctrl-C, SIGTERM)."""
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        importlib.import_module("mpe2")
    except ImportError as error:
        raise ImportError(
            f"env 'mpe' needs the mpe2 package ({error}); install it with: pip install mpe2"
        ) from error
    return importlib.import_module(f"mpe2.{env_id}")


@REGISTRY_ENV.register("mpe")
def make_mpe(env_id: str, **env_kwargs: Any) -> Any:
    """A PettingZoo ParallelEnv of an mpe2 scenario, with ``continuous_actions=False``."""
    require_choice("env_id", env_id, MPE_SCENARIOS, where=" for env 'mpe'")
    scenario = import_mpe2_scenario(env_id)
    try:
        return scenario.parallel_env(continuous_actions=False, **env_kwargs)
    except TypeError as error:
        raise ConfigError(
            f"env 'mpe', env_id {env_id!r}: bad env_kwargs {env_kwargs}: {error}") from None


def _check_mpe_env_id(env_id: str) -> None:
    require_choice("env_id", env_id, MPE_SCENARIOS, where=" for env 'mpe'")
    import_mpe2_scenario(env_id)  # a missing mpe2 raises its ImportError with the pip line


make_mpe.check_env_id = _check_mpe_env_id  # read by make.check_env_id
