"""xwq: Weighted QMIX and the QMIX family for cooperative multi-agent RL, in PyTorch."""

from xwq.common.config import Config, ConfigError, get_configs
from xwq.environment import (
    REGISTRY_ENV,
    REGISTRY_NATIVE_ENV,
    MultiAgentEnv,
    check_env,
    make_envs,
    register_env,
)
from xwq.registry import (
    REGISTRY_AGENT,
    REGISTRY_LEARNER,
    REGISTRY_POLICY,
    REGISTRY_REPRESENTATION,
    Registry,
    UnknownNameError,
)

__version__ = "0.1.0"

__all__ = [
    "REGISTRY_AGENT", "REGISTRY_ENV", "REGISTRY_LEARNER", "REGISTRY_NATIVE_ENV",
    "REGISTRY_POLICY", "REGISTRY_REPRESENTATION", "Config", "ConfigError", "MultiAgentEnv",
    "Registry", "UnknownNameError", "__version__", "check_env", "get_configs", "make_envs",
    "register_env",
]
