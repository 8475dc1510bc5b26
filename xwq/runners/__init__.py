"""Runners: what runs a config and where its results go.

- ``runner.py``: :class:`Runner`, what ``xwq.get_runner`` returns (run, test, benchmark);
- ``experiment.py``: :class:`Experiment`, one seed: envs, agents, training, evaluation, test;
- ``run_folder.py``: a run's folder: naming, lock, resume discovery, summary;
- ``checkpoints.py``: checkpoint files;
- ``sweep.py``: :class:`RunSpec`, :class:`Sweep`, :func:`grid`, the serial backend;
- ``process_backend.py``: :class:`ProcessBackend`, runs in local worker processes;
- ``vectorized.py``: :class:`VectorizedBackend`, several seeds in one process as one batch;
- ``results.py``, ``statistics.py``, ``plots.py``: summaries, statistics across seeds, figures.
"""

from xwq.runners.experiment import Experiment
from xwq.runners.process_backend import ProcessBackend
from xwq.runners.results import aggregate_runs, plot_results
from xwq.runners.runner import Runner
from xwq.runners.statistics import bootstrap_ci, iqm, summarise
from xwq.runners.sweep import RunResult, RunSpec, SerialBackend, Sweep, execute, grid
from xwq.runners.vectorized import VectorizedBackend

__all__ = ["Experiment", "ProcessBackend", "RunResult", "RunSpec", "Runner", "SerialBackend",
           "Sweep", "aggregate_runs", "bootstrap_ci", "execute", "grid", "iqm", "plot_results",
           "VectorizedBackend", "summarise"]
