"""The Runner: train (``run``), test (``run`` with ``is_test``) and ``benchmark`` one config.

Every training run gets its own folder (``seed_<seed>_<timestamp>``; an existing one is never
reused): ``<log_dir>/<method>/<env>/<env_id>/...`` for ``run()``, ``<results_dir>/...`` for
``benchmark()``. It holds ``config.yaml``, the logs, ``checkpoints/ckpt_<env_steps>.pth`` (every
``save_interval`` env steps, the newest ``keep_checkpoints`` kept, plus one at the end) and, once
finished, ``summary.json``.

Resuming (``run(resume=...)``, ``benchmark(resume=...)``) loads a checkpoint into the agents
(networks, targets, optimiser, counters, RNG states, and the replay buffer when ``save_buffer``),
cuts the logs back to the rows they had at the checkpoint, and continues in the same folder. On CPU
a resumed run produces the same losses, returns and parameters as one never interrupted: training
always stops at the first collection round that reaches the target env step (wherever it was
resumed), and the training log is flushed at every checkpoint, in both.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xwq.agents.base import MARLAgents
from xwq.common.config import Config, get_configs
from xwq.environment.interfaces import VecEnv
from xwq.environment.make import make_envs
from xwq.learners import NonFiniteLossError
from xwq.registry import REGISTRY_AGENT
from xwq.runners.checkpoints import (
    check_resumable,
    count_log_rows,
    list_checkpoints,
    load_checkpoint,
    newest_matching_run,
    save_checkpoint,
    truncate_logs,
)
from xwq.runners.parallel import benchmark_seeds, check_workers
from xwq.runners.results import (
    METRICS_STREAM,
    SUMMARY_FILE,
    find_runs,
    group_runs,
    load_run,
    machine_info,
    new_run_dir,
    package_versions,
    run_name,
    run_subdir,
    timestamp,
    write_json,
    write_report,
)

logger = logging.getLogger(__name__)

__all__ = ["Runner", "aggregate_runs", "plot_results", "run_name", "run_subdir"]


@dataclass
class _RunState:
    """What the runner itself must carry across a checkpoint."""

    kind: str  # "run" or "benchmark"
    run_dir: Path
    curve: list[list[float]] = field(default_factory=list)  # [env_step, mean, std] per eval
    best: float | None = None
    best_step: int | None = None
    elapsed: float = 0.0  # wall seconds of earlier sessions of this run
    train_seconds: float = 0.0
    resumed_from: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    last_checkpoint: Path | None = None

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def to_dict(self) -> dict:
        return {"curve": self.curve, "best": self.best, "best_step": self.best_step,
                "elapsed": self.wall(), "train_seconds": self.train_seconds,
                "resumed_from": list(self.resumed_from)}

    @classmethod
    def from_dict(cls, kind: str, run_dir: Path, saved: dict) -> _RunState:
        return cls(kind, run_dir, curve=[list(point) for point in saved["curve"]],
                   best=saved["best"], best_step=saved["best_step"], elapsed=saved["elapsed"],
                   train_seconds=saved["train_seconds"],
                   resumed_from=list(saved["resumed_from"]))


class Runner:
    """Drives one configuration: ``run()`` trains (or tests when ``is_test``), ``benchmark()``
    trains with periodic greedy evaluation and writes a results folder.

    Attributes:
        config: the resolved config; envs: the training env; agents: the agents;
        run_dir: the folder of the last run/benchmark (None before); gif_path: the GIF written
        by the last ``is_test`` run with ``render: true``.
    """

    def __init__(self, config: Any, envs: VecEnv, agents: MARLAgents,
                 is_test: bool = False) -> None:
        self.config = config
        self.envs = envs
        self.agents = agents
        self.is_test = is_test
        self._test_envs: VecEnv | None = None
        self.run_dir: Path | None = None
        self.gif_path: Path | None = None

    @classmethod
    def from_config(cls, config: Config | dict, is_test: bool = False,
                    **overrides: Any) -> Runner:
        """A new runner (fresh envs and agents) for ``config`` with ``overrides`` applied and
        validated again, e.g. ``Runner.from_config(runner.config, seed=2)``."""
        values = dict(config.to_dict() if isinstance(config, Config) else config)
        values.update(overrides)
        resolved = get_configs(method=values["method"], env=values["env_name"],
                               env_id=values["env_id"], overrides=values)
        return cls.build(resolved, is_test=is_test)

    @classmethod
    def build(cls, config: Config, is_test: bool = False) -> Runner:
        """A runner for an already resolved ``config``: its envs, then its agents."""
        envs = make_envs(config)
        try:
            agents = REGISTRY_AGENT[config.agent](config, envs)
        except BaseException:
            envs.close()
            raise
        return cls(config, envs, agents, is_test=is_test)

    @property
    def test_envs(self) -> VecEnv:
        if self._test_envs is None:
            self._test_envs = make_envs(self.config, test=True)
        return self._test_envs

    # --- train -------------------------------------------------------------------------------
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
                raise ValueError("resume applies to training; is_test runs load model_path "
                                 "(or the newest final model)")
            return self.test()
        config = self.config
        state = self._open("run", config.log_dir, resume)
        if isinstance(state, dict):  # already finished
            self.finish()
            return Path(state["final_model"])
        model_path = run_subdir(config.model_dir, config) / state.run_dir.name / "final_model.pth"
        with self._progress() as progress:
            self._train_until(config.running_steps, state, progress)
        self.agents.save_model(model_path)
        self._final_checkpoint(state)
        write_json({**self._summary_base(state), "final_model": str(model_path)},
                   state.run_dir / SUMMARY_FILE)
        logger.info("final model saved to %s", model_path)
        self.finish()
        return model_path

    def _progress(self) -> tqdm | contextlib.nullcontext:
        config = self.config
        if not config.progress_bar:  # no tqdm at all (its locks and thread stay out of workers)
            return contextlib.nullcontext()
        return tqdm(total=config.running_steps, initial=self.agents.env_steps, unit="step",
                    dynamic_ncols=True,
                    desc=f"{config.method} {config.env_name}/{config.env_id} seed {config.seed}")

    def _train_until(self, target: int, state: _RunState, progress: Any = None) -> None:
        """Collect and learn until the first round that ends at or after env step ``target``,
        checkpointing on the way. The stop depends only on ``target``, never on where training
        started, which is what makes a resumed run end where an uninterrupted one does."""
        agents = self.agents
        if agents.env_steps >= target:
            return

        def after_round(agents: MARLAgents) -> None:
            if self._checkpoint_due():
                self._checkpoint(state)

        start = time.perf_counter()
        try:
            agents.train(callback=after_round, progress=progress, until_env_steps=target)
        except NonFiniteLossError as error:
            last = state.last_checkpoint or (list_checkpoints(state.run_dir) or [None])[-1]
            self.finish()
            raise NonFiniteLossError(
                f"training stopped at env step {agents.env_steps}: {error}. Last good "
                f"checkpoint: {last or 'none yet'}") from error
        except BaseException:
            self.finish()
            raise
        finally:
            state.train_seconds += time.perf_counter() - start

    # --- checkpoints -------------------------------------------------------------------------
    def _checkpoint_due(self) -> bool:
        interval = self.config.save_interval
        return interval > 0 and (self.agents.env_steps // interval
                                 > self._last_checkpoint_steps // interval)

    def _checkpoint(self, state: _RunState) -> Path:
        agents, config = self.agents, self.config
        agents.flush_log()  # so the rows after a resume are the rows of an unbroken run
        payload = {
            "kind": state.kind,
            "agents": agents.state_dict(include_buffer=config.save_buffer),
            # run_dir is informational: a resume takes the folder the checkpoint lies in
            "runner": {**state.to_dict(), "log_rows": count_log_rows(state.run_dir),
                       "run_dir": str(state.run_dir)},
            "versions": package_versions(),
        }
        path = save_checkpoint(payload, state.run_dir, agents.env_steps,
                               config.keep_checkpoints)
        state.last_checkpoint = path
        self._last_checkpoint_steps = agents.env_steps
        logger.debug("checkpoint %s", path)
        return path

    def _final_checkpoint(self, state: _RunState) -> None:
        """A checkpoint at the end, so a finished run can be extended (resume with a larger
        running_steps)."""
        if self.config.save_interval <= 0:
            return
        if state.kind == "run" and self._last_checkpoint_steps == self.agents.env_steps:
            return  # the periodic checkpoint of this very step already holds everything
        self._checkpoint(state)

    def _open(self, kind: str, root: str, resume: str | os.PathLike | None
              ) -> _RunState | dict:
        """Start a new run folder, or load the checkpoint to resume. Returns the run state, or
        the summary of the matching run when ``resume="auto"`` finds it already finished."""
        config = self.config
        checkpoint: Path | None = None
        if resume == "auto":
            run = newest_matching_run(run_subdir(root, config), config)
            if run is not None:
                summary = _read_summary(run)
                checkpoints = list_checkpoints(run)
                if summary is not None and summary["env_steps"] >= config.running_steps:
                    logger.info("resume auto: %s already finished (%d env steps)", run,
                                summary["env_steps"])
                    return summary
                if checkpoints:
                    checkpoint = checkpoints[-1]
                else:
                    logger.info("resume auto: %s has no checkpoint; starting a new run", run)
            else:
                logger.info("resume auto: no earlier run of %s %s/%s seed %d under %s; "
                            "starting a new run", config.method, config.env_name, config.env_id,
                            config.seed, run_subdir(root, config))
        elif resume is not None:
            checkpoint = Path(resume)
            if checkpoint.is_dir():
                found = list_checkpoints(checkpoint)
                if not found:
                    raise FileNotFoundError(f"no checkpoint in {checkpoint / 'checkpoints'}")
                checkpoint = found[-1]
            elif not checkpoint.is_file():
                raise FileNotFoundError(f"no checkpoint file at {checkpoint}")

        if checkpoint is None:
            run_dir = new_run_dir(root, config)
            state = _RunState(kind, run_dir)
        else:
            state = self._load_checkpoint(kind, checkpoint)
        config.dump(state.run_dir / "config.yaml")
        self.agents.log_dir = state.run_dir
        self.run_dir = state.run_dir
        self._last_checkpoint_steps = self.agents.env_steps
        return state

    def _load_checkpoint(self, kind: str, path: Path) -> _RunState:
        # on the CPU: RNG states must be CPU tensors and the buffer goes back to numpy;
        # load_state_dict copies networks and optimiser state onto the agents' device
        payload = load_checkpoint(path, "cpu")
        if payload["kind"] != kind:
            raise ValueError(f"{path} was written by {payload['kind']}(); resume it with "
                             f"runner.{payload['kind']}(resume=...)")
        check_resumable(payload["agents"]["config"], self.config, path)
        if "buffer" not in payload["agents"]:
            logger.warning("%s holds no replay buffer (save_buffer: false): training continues "
                           "from an empty buffer, so it will not match an uninterrupted run",
                           path)
        run_dir = path.parent.parent
        truncate_logs(run_dir, payload["runner"]["log_rows"])
        self.agents.load_state_dict(payload["agents"])
        state = _RunState.from_dict(kind, run_dir, payload["runner"])
        state.resumed_from.append(str(path))
        state.last_checkpoint = path
        logger.info("resuming %s at %d env steps from %s", run_dir, self.agents.env_steps, path)
        return state

    # --- test --------------------------------------------------------------------------------
    def find_model(self) -> Path:
        """The model ``is_test`` loads: ``model_path``, else the newest final model of this
        method, env, env_id and seed, from ``run()`` (model_dir) or ``benchmark()``
        (results_dir)."""
        config = self.config
        if config.model_path:
            return Path(config.model_path)
        folders = [run_subdir(config.model_dir, config), run_subdir(config.results_dir, config)]
        candidates = [path for folder in folders
                      for path in folder.glob(f"seed_{config.seed}_*/final_model.pth")]
        if not candidates:
            raise FileNotFoundError(
                f"no trained model for seed {config.seed} under {folders[0]} or {folders[1]}; "
                "train first (runner.run() with is_test=False) or set config key 'model_path'")
        return max(candidates, key=lambda path: path.parent.name.split("_", 2)[-1])

    def test(self) -> float:
        """Load the trained model, play ``test_episode`` greedy episodes, return the mean; with
        ``render: true`` also save a GIF of the first episode (path in ``self.gif_path``)."""
        config = self.config
        path = self.find_model()
        self.agents.load_model(path)
        frames: list | None = [] if config.render else None
        try:
            returns = self.agents.test(self.test_envs, config.test_episode, frames=frames)
            mean = float(np.mean(returns))
            logger.info("test: mean return %.3f over %d greedy episodes (model %s)", mean,
                        len(returns), path)
            if frames is not None:
                self.gif_path = self._save_gif(frames, path)
        finally:
            self.finish()
        return mean

    def _save_gif(self, frames: list, model_path: Path) -> Path | None:
        if not frames or any(frame is None for frame in frames):
            logger.warning("env %s/%s cannot draw frames (render() gave None); no GIF saved. "
                           "Native MPE, predator-prey and PettingZoo envs built with "
                           "render_mode='rgb_array' can.", self.config.env_name,
                           self.config.env_id)
            return None
        import imageio.v3 as iio

        path = model_path.parent / "gifs" / (
            f"{model_path.stem}_seed{self.config.seed}_{timestamp()}.gif")
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, np.stack(frames), duration=1000 / self.config.render_fps, loop=0)
        logger.info("GIF of a greedy episode (%d frames) saved to %s", len(frames), path)
        return path

    def finish(self) -> None:
        self.agents.finish()
        if self._test_envs is not None:
            self._test_envs.close()
            self._test_envs = None

    # --- benchmark ---------------------------------------------------------------------------
    def benchmark(self, seeds: Sequence[int] | None = None,
                  resume: str | os.PathLike | None = None, workers: int = 1) -> dict:
        """Train with a greedy evaluation every ``eval_interval`` env steps (and at step 0) on
        separate test envs, keep the final and the best model, and write a results folder
        ``<results_dir>/<method>/<env>/<env_id>/seed_<seed>_<timestamp>/``.

        Args:
            seeds: run each seed in turn (fresh envs and agents, same config otherwise) and
                write an aggregate folder ``aggregate_<timestamp>`` beside the runs.
            resume: ``"auto"`` or a checkpoint path, as for :meth:`run` (with several seeds
                only ``"auto"``: each seed resumes its own newest run, finished ones are reused).
            workers: with ``seeds``, run up to this many seeds at once, each in its own process
                (:mod:`xwq.runners.parallel`): same results as one after another, in about
                1/workers of the time when that many cores are free.

        Returns:
            one seed: the run's summary (``final_test_return``, ``best_test_return``,
            ``run_dir``, ``env_steps``, ``wall_time``, versions, machine, ...);
            ``seeds``: ``{"runs": [summary, ...], "aggregate": {...statistics, "dir",
            "table"}}``.
        """
        check_workers(workers, seeds)
        if seeds is None:
            return self._benchmark_one(resume)
        seeds = [int(seed) for seed in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct and not empty, got {seeds}")
        if resume not in (None, "auto"):
            raise ValueError("with several seeds, resume must be 'auto' (each seed resumes its "
                             "own newest run); resume a single run by its checkpoint path")
        config = self.config.to_dict()
        self.finish()
        if workers > 1 and len(seeds) > 1:
            summaries = benchmark_seeds(config, seeds, resume, min(workers, len(seeds)),
                                        progress=self.config.progress_bar)
        else:
            summaries = []
            for seed in seeds:
                logger.info("benchmark %s %s/%s: seed %d (%d of %d)", config["method"],
                            config["env_name"], config["env_id"], seed, len(summaries) + 1,
                            len(seeds))
                summaries.append(Runner.from_config(config, seed=seed)._benchmark_one(resume))
        aggregate = aggregate_runs([summary["run_dir"] for summary in summaries],
                                   new_run_dir(self.config.results_dir, self.config,
                                               prefix="aggregate"))
        return {"runs": summaries, "aggregate": aggregate}

    def _benchmark_one(self, resume: str | os.PathLike | None) -> dict:
        config, agents = self.config, self.agents
        state = self._open("benchmark", config.results_dir, resume)
        if isinstance(state, dict):
            self.finish()
            return state
        run_dir = state.run_dir

        def evaluate() -> None:
            returns = agents.test(self.test_envs, config.test_episode)
            mean, std = float(np.mean(returns)), float(np.std(returns))
            state.curve.append([agents.env_steps, mean, std])
            agents.run_logger.log(agents.env_steps, {
                "test_return_mean": mean, "test_return_std": std,
                "test_return_min": float(np.min(returns)),
                "test_return_max": float(np.max(returns)), "wall_time": state.wall()},
                stream=METRICS_STREAM)
            if state.best is None or mean > state.best:
                state.best, state.best_step = mean, agents.env_steps
                agents.save_model(run_dir / "best_model.pth")
            logger.info("seed %d, env step %d: greedy test return %.3f ± %.3f (best %.3f)",
                        config.seed, agents.env_steps, mean, std, state.best)

        try:
            if not state.curve:
                evaluate()
            with self._progress() as progress:
                # the next evaluation follows from the last one, so a resumed run picks up an
                # evaluation that was due when its checkpoint was written
                while (last := int(state.curve[-1][0])) < config.running_steps:
                    target = min(config.running_steps,
                                 (last // config.eval_interval + 1) * config.eval_interval)
                    self._train_until(target, state, progress)
                    evaluate()
        except BaseException:
            self.finish()
            raise
        agents.save_model(run_dir / "final_model.pth")
        self._final_checkpoint(state)
        agents.flush_log()
        agents.run_logger.flush()
        from xwq.runners.plots import plot_learning_curve

        plot_learning_curve(run_dir, title=f"{config.method} on {config.env_name}/"
                                           f"{config.env_id}, seed {config.seed}")
        final = state.curve[-1]
        summary = {
            **self._summary_base(state),
            "final_test_return": final[1], "final_test_return_std": final[2],
            "best_test_return": state.best, "best_env_step": state.best_step,
            "evaluations": len(state.curve), "test_episode": config.test_episode,
            "final_model": str(run_dir / "final_model.pth"),
            "best_model": str(run_dir / "best_model.pth"),
        }
        write_json(summary, run_dir / SUMMARY_FILE)
        logger.info("benchmark finished: final greedy return %.3f, best %.3f; results in %s",
                    summary["final_test_return"], summary["best_test_return"], run_dir)
        self.finish()
        return summary

    def _summary_base(self, state: _RunState) -> dict:
        config, agents = self.config, self.agents
        wall = state.wall()
        return {
            "method": config.method, "env": config.env_name, "env_id": config.env_id,
            "seed": config.seed, "env_steps": agents.env_steps, "episodes": agents.episodes,
            "updates": agents.learner.updates, "wall_time": wall,
            "train_time": state.train_seconds,
            "env_steps_per_second": agents.env_steps / wall if wall > 0 else math.nan,
            "train_env_steps_per_second": (agents.env_steps / state.train_seconds
                                           if state.train_seconds > 0 else math.nan),
            "run_dir": str(state.run_dir), "resumed_from": state.resumed_from,
            "finished_at": datetime.now().isoformat(timespec="seconds"),
            "versions": package_versions(), "machine": machine_info(agents.device),
        }


def _read_summary(run_dir: Path) -> dict | None:
    import json

    path = run_dir / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# --- several runs ----------------------------------------------------------------------------
def aggregate_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   title: str | None = None) -> dict:
    """Statistics across finished benchmark runs (normally the seeds of one method): mean,
    median and IQM of the final test return with bootstrap 95% CIs, the median/quartile curve
    (``aggregate.png``) and a Markdown table (``aggregate.md``, also ``.csv``/``.json``) in
    ``out_dir``. Returns the first group's statistics plus ``dir``, ``table`` and ``files``."""
    runs = [load_run(path) for path in run_dirs]
    groups = group_runs(runs)
    first = runs[0]["config"]
    report = write_report(groups, out_dir, "aggregate",
                          title=title or f"{first['env_name']}/{first['env_id']}")
    statistics = next(iter(report["groups"].values()))
    return {**statistics, "dir": str(out_dir), "table": report["table"],
            "files": report["files"]}


def plot_results(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None,
                 title: str | None = None) -> dict:
    """Compare methods: every finished benchmark run at or below ``paths``, grouped by method
    (from each run's config.yaml), drawn on one figure (median and quartile band per method),
    with one Markdown table (+ CSV/JSON) of the final-return statistics.

    Writes ``comparison.{png,md,csv,json}`` into ``out_dir`` (default
    ``./results/comparison_<timestamp>``) and returns ``{"groups", "table", "files", "dir"}``.
    """
    runs = [load_run(path) for path in find_runs(paths)]
    groups = group_runs(runs)
    scenarios = sorted({f"{r['config']['env_name']}/{r['config']['env_id']}" for r in runs})
    if out_dir is None:
        out_dir = Path("results") / f"comparison_{timestamp()}"
    report = write_report(groups, out_dir, "comparison",
                          title=title if title is not None else ", ".join(scenarios))
    return {**report, "dir": str(out_dir)}
