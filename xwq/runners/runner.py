"""The Runner: train (``run``), test (``run`` with ``is_test``) and ``benchmark`` one config."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xwq.agents.base import MARLAgents
from xwq.environment.make import make_envs
from xwq.environment.vector import VecEnv

logger = logging.getLogger(__name__)


def run_name(config: Any) -> str:
    """``seed_<seed>_<timestamp>``: a new folder for every run, never an earlier run's."""
    return f"seed_{config.seed}_{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"


def run_subdir(root: str | Path, config: Any) -> Path:
    return Path(root) / config.method / config.env_name / config.env_id


class Runner:
    """Drives one configuration: ``run()`` trains (or tests when ``is_test``), ``benchmark()``
    trains with periodic greedy evaluation.

    Attributes:
        config: the resolved config; envs: the training env; agents: the agents.
    """

    def __init__(self, config: Any, envs: VecEnv, agents: MARLAgents,
                 is_test: bool = False) -> None:
        self.config = config
        self.envs = envs
        self.agents = agents
        self.is_test = is_test
        self._test_envs: VecEnv | None = None

    @property
    def test_envs(self) -> VecEnv:
        if self._test_envs is None:
            self._test_envs = make_envs(self.config, test=True)
        return self._test_envs

    # --- train / test ------------------------------------------------------------------------
    def run(self) -> Any:
        """Train for ``running_steps`` env steps and save the final model (returns its path);
        with ``is_test=True``, load the model and return the mean greedy test return."""
        if self.is_test:
            return self.test()
        config = self.config
        name = run_name(config)
        self.agents.log_dir = run_subdir(config.log_dir, config) / name
        model_path = run_subdir(config.model_dir, config) / name / "final_model.pth"
        self._train(config.running_steps)
        self.agents.save_model(model_path)
        logger.info("final model saved to %s", model_path)
        self.finish()
        return model_path

    def _train(self, steps: int, callback: Any = None) -> None:
        config = self.config
        remaining = max(0, steps - self.agents.env_steps)
        with tqdm(total=steps, initial=self.agents.env_steps, unit="step", dynamic_ncols=True,
                  disable=not config.progress_bar,
                  desc=f"{config.method} {config.env_name}/{config.env_id}") as progress:
            vec_steps = -(-remaining // config.parallels)
            self.agents.train(vec_steps, callback=callback, progress=progress)

    def find_model(self) -> Path:
        """The model ``is_test`` loads: ``model_path``, else the newest final model saved for
        this method, env, env_id and seed."""
        config = self.config
        if config.model_path:
            return Path(config.model_path)
        folder = run_subdir(config.model_dir, config)
        candidates = sorted(folder.glob(f"seed_{config.seed}_*/final_model.pth"))
        if not candidates:
            raise FileNotFoundError(
                f"no trained model for seed {config.seed} under {folder}; train first "
                "(runner.run() with is_test=False) or set config key 'model_path'")
        return candidates[-1]

    def test(self) -> float:
        """Load the trained model, play ``test_episode`` greedy episodes, return the mean."""
        path = self.find_model()
        self.agents.load_model(path)
        returns = self.agents.test(self.test_envs, self.config.test_episode)
        mean = float(np.mean(returns))
        logger.info("test: mean return %.3f over %d greedy episodes (model %s)", mean,
                    len(returns), path)
        self.finish()
        return mean

    def finish(self) -> None:
        self.agents.finish()
        if self._test_envs is not None:
            self._test_envs.close()
            self._test_envs = None

    # --- benchmark ---------------------------------------------------------------------------
    def benchmark(self) -> dict:
        """Train with a greedy evaluation every ``eval_interval`` env steps (and at step 0);
        keep the final and the best model; write results to a new run folder."""
        config = self.config
        run_dir = run_subdir(config.results_dir, config) / run_name(config)
        run_dir.mkdir(parents=True, exist_ok=False)
        config.dump(run_dir / "config.yaml")
        self.agents.log_dir = run_dir
        best = -np.inf
        start = time.perf_counter()
        curve: list[tuple[int, float]] = []

        def evaluate() -> None:
            nonlocal best
            returns = self.agents.test(self.test_envs, config.test_episode)
            mean = float(np.mean(returns))
            curve.append((self.agents.env_steps, mean))
            self.agents.run_logger.log(self.agents.env_steps, {
                "test_return_mean": mean, "test_return_std": float(np.std(returns)),
                "wall_time": time.perf_counter() - start}, stream="metrics")
            if mean > best:
                best = mean
                self.agents.save_model(run_dir / "best_model.pth")

        evaluate()
        while self.agents.env_steps < config.running_steps:
            next_eval = min(config.running_steps,
                            (self.agents.env_steps // config.eval_interval + 1)
                            * config.eval_interval)
            self._train(next_eval)
            evaluate()
        wall = time.perf_counter() - start
        self.agents.save_model(run_dir / "final_model.pth")
        summary = {"final_test_return": curve[-1][1], "best_test_return": best,
                   "env_steps": self.agents.env_steps, "wall_time": wall,
                   "run_dir": str(run_dir)}
        self.finish()
        return summary
