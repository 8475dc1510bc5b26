"""Vectorisation of dict-API envs: K ArrayEnv as one VecEnv."""
