"""From what users write to arrays: a PettingZoo ``ParallelEnv`` as a :class:`MultiAgentEnv`
(:mod:`.pettingzoo`), and one :class:`MultiAgentEnv` as arrays (:mod:`.array_env`)."""

from xwq.environment.adapters.array_env import ArrayEnv, as_multi_agent_env
from xwq.environment.adapters.pettingzoo import PettingZooEnv

__all__ = ["ArrayEnv", "PettingZooEnv", "as_multi_agent_env"]
