"""Environments: the dict-API base class, adapters, vectorisation and the registered envs."""

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
