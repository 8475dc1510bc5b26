"""Environments: the dict-API base class, adapters, vectorisation and the registered envs."""

from xwq.environment.adapters import ArrayEnv, PettingZooEnv, as_multi_agent_env
from xwq.environment.check import check_env
from xwq.environment.interfaces import EnvSpec, MultiAgentEnv, NativeVecEnv, StepResult, VecEnv
from xwq.environment.make import make_envs, register_env
from xwq.environment.mpe import make_mpe
from xwq.environment.mpe_native import SimpleSpreadVecEnv  # noqa: F401  (REGISTRY_NATIVE_ENV['mpe'])
from xwq.environment.vector import SerialVecEnv, SubprocVecEnv
from xwq.errors import EnvMismatchError
from xwq.registry import REGISTRY_ENV, REGISTRY_NATIVE_ENV

REGISTRY_ENV["mpe"] = make_mpe

__all__ = [
    "REGISTRY_ENV", "REGISTRY_NATIVE_ENV", "ArrayEnv", "EnvMismatchError", "EnvSpec",
    "MultiAgentEnv", "NativeVecEnv", "PettingZooEnv", "SerialVecEnv", "StepResult",
    "SubprocVecEnv", "VecEnv", "as_multi_agent_env", "check_env", "make_envs", "register_env",
]
from xwq.environment import matrix_game, predator_prey  # noqa: E402,F401  (registers the envs)
