"""Environments: the public names, from modules laid out by role.

- :mod:`.interfaces`: the dict API users implement (:class:`MultiAgentEnv`) and the array API
  the agents consume (:class:`EnvSpec`, :class:`VecEnv`, :class:`StepResult`,
  :class:`NativeVecEnv`), with the shape contract;
- :mod:`.adapters`: a PettingZoo ``ParallelEnv`` as a :class:`MultiAgentEnv`, and one
  :class:`MultiAgentEnv` as arrays (:class:`ArrayEnv`);
- :mod:`.vector`: K :class:`ArrayEnv` as one :class:`VecEnv`, serially or in subprocesses;
- :mod:`.envs`: the concrete envs, each registering itself in ``REGISTRY_ENV`` /
  ``REGISTRY_NATIVE_ENV`` when imported (this package imports them);
- :mod:`.make`: :func:`make_envs` (the :class:`VecEnv` a config describes), :func:`register_env`;
- :mod:`.check`: :func:`check_env`.

Imports point one way: interfaces <- adapters <- vector <- make; envs import only interfaces
and the registry.
"""

from xwq.environment import envs  # noqa: F401  (registers the concrete envs)
from xwq.environment.adapters import ArrayEnv, PettingZooEnv, as_multi_agent_env
from xwq.environment.check import check_env
from xwq.environment.interfaces import EnvSpec, MultiAgentEnv, NativeVecEnv, StepResult, VecEnv
from xwq.environment.make import make_envs, register_env
from xwq.environment.vector import SerialVecEnv, SubprocVecEnv
from xwq.errors import EnvMismatchError
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV

__all__ = [
    "REGISTRY_ENV", "REGISTRY_NATIVE_ENV", "ArrayEnv", "EnvMismatchError", "EnvSpec",
    "MultiAgentEnv", "NativeVecEnv", "PettingZooEnv", "SerialVecEnv", "StepResult",
    "SubprocVecEnv", "VecEnv", "as_multi_agent_env", "check_env", "make_envs", "register_env",
]
