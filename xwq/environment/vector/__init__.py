"""Vectorisation of dict-API envs: K :class:`ArrayEnv` as one :class:`VecEnv`, stepped serially
(:mod:`.serial`) or in worker processes (:mod:`.subproc`)."""

from xwq.environment.vector.serial import SerialVecEnv
from xwq.environment.vector.subproc import SubprocVecEnv

__all__ = ["SerialVecEnv", "SubprocVecEnv"]
