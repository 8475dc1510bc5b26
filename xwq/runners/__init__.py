"""Runners: training, testing and benchmarking one configuration; results across seeds and
methods (statistics, tables, plots); checkpoints and resume."""

from xwq.runners.runner import Runner, aggregate_runs, plot_results
from xwq.runners.statistics import bootstrap_ci, iqm, summarise

__all__ = ["Runner", "aggregate_runs", "bootstrap_ci", "iqm", "plot_results", "summarise"]
