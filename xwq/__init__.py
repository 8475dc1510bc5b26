"""xwq: Weighted QMIX and the QMIX family for cooperative multi-agent RL, in PyTorch."""

import xwq.agents  # noqa: F401  (registers the agents)
import xwq.learners  # noqa: F401  (registers the learners)
import xwq.policies  # noqa: F401  (registers the policies)
import xwq.representations  # noqa: F401  (registers the agent bodies)
from xwq.common.config import Config, get_configs
from xwq.environment import (
    REGISTRY_ENV,
    REGISTRY_NATIVE_ENV,
    MultiAgentEnv,
    check_env,
    make_envs,
    register_env,
)
from xwq.errors import (
    CheckpointError,
    ConfigError,
    EnvMismatchError,
    MissingFileError,
    UnknownNameError,
    UsageError,
    XwqError,
)
from xwq.get_runner import get_runner
from xwq.registry import (
    REGISTRY_AGENT,
    REGISTRY_LEARNER,
    REGISTRY_POLICY,
    REGISTRY_REPRESENTATION,
    REGISTRY_WEIGHTING,
    Registry,
)

__version__ = "0.1.0"

__all__ = [
    "REGISTRY_AGENT", "REGISTRY_ENV", "REGISTRY_LEARNER", "REGISTRY_NATIVE_ENV",
    "REGISTRY_POLICY", "REGISTRY_REPRESENTATION", "CheckpointError", "Config", "ConfigError",
    "EnvMismatchError", "MissingFileError", "MultiAgentEnv", "Registry", "UnknownNameError",
    "UsageError", "XwqError", "__version__", "check_env", "get_configs", "make_envs",
    "get_runner", "register_env",
    "REGISTRY_WEIGHTING",
]
