"""The Runner that :func:`xwq.get_runner` returns: one resolved config, and the calls a user
makes on it — ``run()`` (train, or test when ``is_test``), ``benchmark()``,
``benchmark(seeds=[...], workers=W)``.

The runner composes the pieces that do the work and holds none of their logic:

- :class:`xwq.runners.experiment.Experiment` — one seed: envs, agents, training, evaluation,
  checkpoints, test;
- :mod:`xwq.runners.run_folder` — where a run writes, its lock, finding it again to resume;
- :class:`xwq.runners.sweep.Sweep` — several seeds (or a whole grid) on a backend, aggregated.

Each ``run()``/``benchmark()`` call is a new run with freshly initialised networks (or a resumed
one), so one runner can be used again; ``runner.agents`` and ``runner.envs`` are those of the
current experiment, built on first use.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import xwq.components  # noqa: F401  (the registries check_names reads)
from xwq.agents.base import MARLAgents
from xwq.agents.budget import check_training_budget
from xwq.common.config import Config, get_configs
from xwq.environment import VecEnv
from xwq.environment.make import check_env_id
from xwq.errors import UsageError
from xwq.registry import (
    REGISTRY_AGENT,
    REGISTRY_ENV,
    REGISTRY_LEARNER,
    REGISTRY_NATIVE_ENV,
    REGISTRY_POLICY,
    REGISTRY_REPRESENTATION,
    require_choice,
)
from xwq.runners.backends import make_backend
from xwq.runners.experiment import Experiment
from xwq.runners.process_backend import check_workers
from xwq.runners.sweep import Backend, RunSpec, Sweep, aggregate_group, check_seeds
from xwq.runners.vectorized import VectorizedBackend, check_vectorize_seeds

logger = logging.getLogger(__name__)


class Runner:
    """Drives one configuration: ``run()`` trains (or tests when ``is_test``), ``benchmark()``
    trains with periodic greedy evaluation and writes a results folder.

    Attributes:
        config: the resolved config; envs, agents: those of the current experiment (built on
        first use); run_dir: the folder of the last run/benchmark (None before); gif_path: the
        GIF written by the last ``is_test`` run with ``render: true``.
    """

    def __init__(self, config: Config, is_test: bool = False) -> None:
        check_names(config)
        if not is_test:  # what the config alone shows; the env's time limit is checked later
            check_training_budget(config)
        self.config = config
        self.is_test = is_test
        self._experiment: Experiment | None = None  # built, not yet used by a call
        self._last: Experiment | None = None  # used by the last call
        self.run_dir: Path | None = None
        self.gif_path: Path | None = None

    @classmethod
    def from_config(cls, config: Config | dict, is_test: bool = False,
                    **overrides: Any) -> Runner:
        """A new runner for ``config`` with ``overrides`` applied and validated again, e.g.
        ``Runner.from_config(runner.config, seed=2)``."""
        values = dict(config.to_dict() if isinstance(config, Config) else config)
        values.update(overrides)
        resolved = get_configs(method=values["method"], env=values["env_name"],
                               env_id=values["env_id"], overrides=values)
        return cls(resolved, is_test=is_test)

    # --- the current experiment ----------------------------------------------------------------
    @property
    def experiment(self) -> Experiment:
        """The experiment the next call uses (process set up, envs and agents built on first
        use); after a call, the one that call used, until the next call."""
        if self._experiment is None and self._last is not None:
            return self._last
        if self._experiment is None:
            self._experiment = Experiment.build(self.config, train=not self.is_test)
        return self._experiment

    @property
    def agents(self) -> MARLAgents:
        return self.experiment.agents

    @property
    def envs(self) -> VecEnv:
        return self.experiment.envs

    @property
    def test_envs(self) -> VecEnv:
        return self.experiment.test_envs

    @contextlib.contextmanager
    def _use(self) -> Iterator[Experiment]:
        """Hand the current experiment (built now if needed) to one call; the next call builds
        a fresh one, while ``runner.agents`` still shows this one's."""
        experiment = self._experiment or Experiment.build(self.config, train=not self.is_test)
        self._experiment, self._last = None, experiment
        try:
            yield experiment
        finally:
            self.run_dir, self.gif_path = experiment.run_dir, experiment.gif_path

    def finish(self) -> None:
        """Close the envs and logs of the current experiment."""
        for experiment in (self._experiment, self._last):
            if experiment is not None:
                experiment.close()

    # --- what users call ------------------------------------------------------------------------
    def run(self, resume: str | os.PathLike | None = None) -> Any:
        """Train for ``running_steps`` env steps and save the final model (returns its path);
        with ``is_test=True``, load the model and return the mean greedy test return.

        Args:
            resume: ``"auto"`` continues the newest unfinished run of this method, env, env_id
                and seed under ``log_dir`` whose config matches (a new run if there is none); a
                path continues from that checkpoint file (or the newest checkpoint of that run
                folder).
        """
        if self.is_test:
            if resume is not None:
                raise UsageError("resume applies to training; is_test runs load model_path "
                                 "(or the newest final model)")
            return self.test()
        with self._use() as experiment:
            return experiment.train(resume=resume)

    def test(self) -> float:
        """Load the trained model, play ``test_episode`` greedy episodes, return the mean; with
        ``render: true`` also save a GIF of the first episode (path in ``self.gif_path``)."""
        with self._use() as experiment:
            return experiment.test()

    def find_model(self) -> Path:
        """The model ``is_test`` loads (see :meth:`Experiment.find_model`)."""
        return self.experiment.find_model()

    def benchmark(self, seeds: Sequence[int] | None = None,
                  resume: str | os.PathLike | None = None, workers: int = 1,
                  backend: str | Backend | None = None, vectorize_seeds: int = 1) -> dict:
        """Train with a greedy evaluation every ``eval_interval`` env steps (and at step 0) on
        separate test envs, keep the final and the best model, and write a results folder
        ``<results_dir>/<method>/<env>/<env_id>/seed_<seed>_<timestamp>/``.

        Args:
            seeds: run each seed (a :class:`Sweep` of this config over the seeds) and write an
                aggregate folder ``aggregate_<timestamp>`` beside the runs.
            resume: ``"auto"`` or a checkpoint path, as for :meth:`run` (with several seeds
                only ``"auto"``: each seed resumes its own newest run, finished ones are reused).
            workers: with ``seeds``, run up to this many seeds at once, each in its own process
                (:class:`ProcessBackend`): same results as one after another, in about
                1/workers of the time when that many cores are free.
            backend: with ``seeds``, where the runs execute: ``"local"`` (the default: serial,
                or ``workers`` processes), ``"ray"`` (:class:`RayBackend`, each seed a Ray task)
                or a backend object, e.g. ``RayBackend(address="auto")``.
            vectorize_seeds: with ``seeds``, train up to this many seeds at once in this
                process as one batch (:mod:`xwq.runners.vectorized`): each seed keeps its own
                networks, optimiser, buffer, ε, RNGs, envs and run folder, with the same results
                as alone (to float rounding), while all of them act in one forward pass and
                learn in one stacked update.

        Returns:
            one seed: the run's summary (``final_test_return``, ``best_test_return``,
            ``run_dir``, ``env_steps``, ``wall_time``, versions, machine, ...);
            ``seeds``: ``{"runs": [summary, ...], "aggregate": {...statistics, "dir",
            "table"}}``.
        """
        check_workers(workers, seeds)
        if check_vectorize_seeds(vectorize_seeds) > 1:
            if seeds is None:
                raise UsageError("vectorize_seeds trains several seeds together: give seeds too "
                                 "(--seeds on the command line)")
            if workers != 1 or backend is not None:
                raise UsageError("vectorize_seeds runs its seeds in this process; it does not "
                                 "combine with workers or a backend")
            backend = VectorizedBackend(vectorize_seeds)
        elif backend is not None and seeds is None:
            raise UsageError("a backend runs several seeds: give seeds too (--seeds on the "
                             "command line)")
        if seeds is None:
            with self._use() as experiment:
                return experiment.benchmark(resume=resume)
        seeds = check_seeds(seeds)
        if resume not in (None, "auto"):
            raise UsageError("with several seeds, resume must be 'auto' (each seed resumes its "
                             "own newest run); resume a single run by its checkpoint path")
        specs = [RunSpec.from_config(self.config, seed=seed, resume=resume) for seed in seeds]
        result = Sweep(specs, make_backend(backend, len(seeds), workers),
                       progress=self.config.progress_bar).run()
        runs = result["runs"]
        aggregate = (next(iter(result["aggregates"].values())) if result["aggregates"]
                     else _single_aggregate(runs))
        return {"runs": [run.summary for run in runs], "aggregate": aggregate}


def check_names(config: Config) -> None:
    """Every registry name the config uses exists (UnknownNameError listing the choices and the
    closest one), checked before anything is built."""
    envs = sorted(set(REGISTRY_ENV) | set(REGISTRY_NATIVE_ENV))
    require_choice("env", config.env_name, envs,
                   hint="Register your own with xwq.register_env(name, factory).")
    check_env_id(config.env_name, config.env_id)
    for registry, key in ((REGISTRY_AGENT, "agent"), (REGISTRY_POLICY, "policy"),
                          (REGISTRY_LEARNER, "learner"),
                          (REGISTRY_REPRESENTATION, "representation")):
        require_choice(registry.kind, getattr(config, key), list(registry),
                       where=f" (config key '{key}')")


def _single_aggregate(runs: list) -> dict:
    """The aggregate of a one-seed list (a Sweep aggregates groups of two or more)."""
    return aggregate_group(runs)[1]

