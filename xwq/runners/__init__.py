"""Runners: training, testing and benchmarking one configuration."""

from xwq.runners.runner import Runner

__all__ = ["Runner"]
