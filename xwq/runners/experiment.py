"""One seed of one configuration: its envs and agents, trained, evaluated or tested.

:meth:`Experiment.build` is a run's entry point: process-wide settings first (threads, seeds,
device: :func:`xwq.common.process.setup_process`), then the envs, then the agents. Then:

- :meth:`Experiment.train` — ``running_steps`` env steps, checkpoints, the final model;
- :meth:`Experiment.benchmark` — the same with a greedy evaluation every ``eval_interval`` env
  steps (and at step 0) on separate test envs, best/final models, a learning curve and
  ``summary.json``;
- :meth:`Experiment.test` — load a trained model and play greedy episodes.

A run that could make no gradient update is refused before it starts
(:func:`xwq.agents.budget.check_training_budget`), and so is a replay buffer over
``buffer_memory_budget_mb``, before the envs are built (:func:`check_replay_memory`). Training
stops at the first vectorised step that reaches ``running_steps`` (fewer than ``parallels`` env
steps beyond it), and a benchmark evaluates at the first one that reaches each multiple of
``eval_interval``.

Evaluations log ``test_return_*`` and, for every numeric per-episode statistic the env reports
in its ``info`` (:mod:`xwq.environment.interfaces`), ``test_<name>_mean``/``_std``. The config
key ``eval_metric`` (``return`` by default, or one of those names, e.g. ``battle_won``) is the
headline: it picks ``best_model.pth`` and gives ``summary.json`` its ``final_test_<metric>`` and
``best_test_<metric>`` (with ``return``, exactly the fields of a run without env statistics).

Each training run writes into its own folder (:mod:`xwq.runners.run_folder`), locked while it
trains. A checkpoint first ends the training episodes in flight
(:meth:`MARLAgents.truncate_episodes`: stored as time-limit truncations, every env restarting
at its next seed), since an env's own state cannot be saved; the uninterrupted run does the
same, so nothing differs at a resume. Resuming loads a checkpoint into the agents (networks,
targets, optimiser, counters, RNG states, and the replay buffer when ``save_buffer``), cuts the
logs back to the rows they had at the checkpoint, and continues in the same folder. On CPU a
resumed run produces the same losses, returns and parameters as one never interrupted: training
always stops at the first vectorised step that reaches the target env step (wherever it was
resumed), and the training log is flushed at every checkpoint, in both.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xwq.agents.base import MARLAgents
from xwq.agents.budget import check_training_budget
from xwq.agents.buffer import check_buffer_memory
from xwq.agents.rollout import Episodes
from xwq.common.config import Config
from xwq.common.process import setup_process
from xwq.common.seeding import get_rng_states, set_rng_states
from xwq.environment import VecEnv, make_envs
from xwq.errors import CheckpointError, ConfigError, MissingFileError
from xwq.learners import NonFiniteLossError
from xwq.registry import REGISTRY_AGENT
from xwq.runners.checkpoints import (
    check_resumable,
    list_checkpoints,
    load_checkpoint,
    load_policy,
    read_model,
    save_checkpoint,
)
from xwq.runners.plots import plot_learning_curve
from xwq.runners.results import METRICS_STREAM, machine_info, package_versions, write_json
from xwq.runners.run_folder import (
    SUMMARY_FILE,
    FolderLock,
    count_log_rows,
    open_run,
    run_subdir,
    timestamp,
    truncate_logs,
)

logger = logging.getLogger(__name__)


@dataclass
class _RunState:
    """What the experiment itself must carry across a checkpoint."""

    kind: str  # "run" or "benchmark"
    run_dir: Path
    curve: list[list[float]] = field(default_factory=list)  # [env_step, mean, std] per eval
    # per eval, the env statistics' test means and stds: {"<name>_mean": ..., "<name>_std": ...}
    stats: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None  # best value of the headline metric (config eval_metric)
    best_step: int | None = None
    elapsed: float = 0.0  # wall seconds of earlier sessions of this run
    train_seconds: float = 0.0
    resumed_from: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    last_checkpoint: Path | None = None

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def to_dict(self) -> dict:
        return {"curve": self.curve, "stats": self.stats, "best": self.best,
                "best_step": self.best_step,
                "elapsed": self.wall(), "train_seconds": self.train_seconds,
                "resumed_from": list(self.resumed_from)}

    @classmethod
    def from_dict(cls, kind: str, run_dir: Path, saved: dict) -> _RunState:
        curve = [list(point) for point in saved["curve"]]
        return cls(kind, run_dir, curve=curve,
                   stats=[dict(entry) for entry in saved.get("stats", [{} for _ in curve])],
                   best=saved["best"], best_step=saved["best_step"], elapsed=saved["elapsed"],
                   train_seconds=saved["train_seconds"],
                   resumed_from=list(saved["resumed_from"]))


def statistics_summary(episodes: Episodes) -> dict[str, float]:
    """``{"<name>_mean", "<name>_std"}`` over the episodes of each env statistic they report."""
    summary = {}
    for name, values in episodes.statistics.items():
        values = values[~np.isnan(values)]
        if values.size:
            summary[f"{name}_mean"] = float(values.mean())
            summary[f"{name}_std"] = float(values.std())
    return summary


def close_quietly(config: Any, what: str, close: Callable[[], None]) -> None:
    """``close()``, where an exception (the user's ``env.close()``) is a warning: by then the
    run's files are written, and a failure to close must not fail (or hide the real error of)
    the run."""
    try:
        close()
    except Exception as error:  # the user's env.close()
        logger.warning("closing the %s of %s/%s failed (%s: %s); nothing of the run is lost",
                       what, config.env_name, config.env_id, type(error).__name__, error)


def check_replay_memory(config: Any) -> None:
    """Refuse (:class:`~xwq.agents.buffer.BufferTooLargeError`, naming the largest
    ``buffer_size`` that fits) a replay buffer over ``buffer_memory_budget_mb``, from the spec of
    one env built for it and closed: the buffer's size follows from the spec alone, and
    building the ``parallels`` envs first can take long (seconds per env for pixel envs)."""
    probe_config = Config(**{**config.to_dict(), "parallels": 1,
                             "vectorize": "serial" if config.vectorize == "subprocess"
                             else config.vectorize})
    rng_states = get_rng_states()  # building an env may draw: the run's draws stay the same
    try:
        probe = make_envs(probe_config)
    finally:
        set_rng_states(rng_states)
    try:
        spec = probe.spec.with_state_source(config.state_source)
    finally:
        close_quietly(config, "env built to size the replay buffer", probe.close)
    check_buffer_memory(spec, config.buffer_size, config.buffer_memory_budget_mb, warn=False)


class Experiment:
    """One seed of a resolved config: envs, agents and (once started) a run folder.

    Attributes:
        config: the resolved config; envs: the training env; agents: the agents;
        run_dir: the folder of the run once started (None before); gif_path: the GIF written
        by :meth:`test` with ``render: true``.
    """

    def __init__(self, config: Any, envs: VecEnv, agents: MARLAgents) -> None:
        self.config = config
        self.envs = envs
        self.agents = agents
        self._test_envs: VecEnv | None = None
        self.run_dir: Path | None = None
        self.gif_path: Path | None = None
        self._last_checkpoint_steps = 0
        #: called as ``on_evaluation(env_steps, mean_test_return)`` after each greedy
        #: evaluation of :meth:`benchmark` (Ray Tune's trials report through it)
        self.on_evaluation: Callable[[int, float], None] | None = None

    @classmethod
    def build(cls, config: Any, train: bool = True) -> Experiment:
        """Set up the process (threads, seeds, device), then build the envs and the agents.

        For a run that will train (``train``), a replay buffer over ``buffer_memory_budget_mb``
        is refused first, before the ``parallels`` envs are built (:func:`check_replay_memory`).
        """
        setup_process(config)
        if train:
            check_replay_memory(config)
        envs = make_envs(config)
        try:
            agents = REGISTRY_AGENT[config.agent](config, envs)
        except BaseException:
            envs.close()
            raise
        return cls(config, envs, agents)

    @property
    def test_envs(self) -> VecEnv:
        if self._test_envs is None:
            self._test_envs = make_envs(self.config, test=True)
        return self._test_envs

    def close(self) -> None:
        """Close the agents' logger and every env. An env whose ``close()`` raises is reported
        as a warning: the run's files are written by then, and a failure to close must not
        fail (or hide the real error of) the run."""
        close_quietly(self.config, "training envs", self.agents.finish)
        close_quietly(self.config, "test envs", self._close_test_envs)

    def _close_test_envs(self) -> None:
        if self._test_envs is not None:
            envs, self._test_envs = self._test_envs, None
            envs.close()

    # --- train -------------------------------------------------------------------------------
    def train(self, resume: str | os.PathLike | None = None) -> Path:
        """Train for ``running_steps`` env steps in a run folder under ``log_dir``, save the
        final model under ``model_dir`` and return its path (see :func:`open_run` for
        ``resume``)."""
        config = self.config
        _ = self.agents.buffer  # allocate (or refuse) the replay buffer before any folder exists
        with self._open("run", config.log_dir, resume) as state:
            if isinstance(state, dict):  # already finished
                return Path(state["final_model"])
            model_path = (run_subdir(config.model_dir, config) / state.run_dir.name
                          / "final_model.pth")
            with self._progress() as progress:
                self._train_until(config.running_steps, state, progress)
            self.agents.save_model(model_path)
            self._final_checkpoint(state)
            write_json({**self._summary_base(state), "final_model": str(model_path)},
                       state.run_dir / SUMMARY_FILE)
            logger.info("final model saved to %s", model_path)
            return model_path

    def _progress(self) -> tqdm | contextlib.nullcontext:
        config = self.config
        if not config.progress_bar:  # no tqdm at all (its locks and thread stay out of workers)
            return contextlib.nullcontext()
        return tqdm(total=config.running_steps, initial=self.agents.env_steps, unit="step",
                    dynamic_ncols=True,
                    desc=f"{config.method} {config.env_name}/{config.env_id} seed {config.seed}")

    def _train_until(self, target: int, state: _RunState, progress: Any = None) -> None:
        """Collect and learn until the first vectorised step that reaches env step ``target``,
        checkpointing on the way. The stop depends only on ``target``, never on where training
        started, which is what makes a resumed run end where an uninterrupted one does."""
        agents = self.agents
        if agents.env_steps >= target:
            return

        def after_step(agents: MARLAgents) -> None:
            if self._checkpoint_due():
                self._checkpoint(state)

        start = time.perf_counter()
        try:
            agents.train(callback=after_step, progress=progress, until_env_steps=target)
        except NonFiniteLossError as error:
            last = state.last_checkpoint or (list_checkpoints(state.run_dir) or [None])[-1]
            raise NonFiniteLossError(
                f"training stopped at env step {agents.env_steps}: {error}. Last good "
                f"checkpoint: {last or 'none yet'}") from error
        except Exception as error:  # an env or a user's component failed: say where, keep it
            last = state.last_checkpoint or (list_checkpoints(state.run_dir) or [None])[-1]
            if hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(
                    f"(xwq: {self.config.env_name}/{self.config.env_id}, seed "
                    f"{self.config.seed}, stopped at env step {agents.env_steps} of "
                    f"{self.config.running_steps}; run folder {state.run_dir}; "
                    + (f"--resume auto continues from {last})" if last else
                       "no checkpoint yet: a rerun starts from the beginning)"))
            raise
        finally:
            state.train_seconds += time.perf_counter() - start

    # --- benchmark ---------------------------------------------------------------------------
    def benchmark(self, resume: str | os.PathLike | None = None) -> dict:
        """Train with greedy evaluations in a run folder under ``results_dir``; returns the
        run's summary (also written to ``summary.json``)."""
        config = self.config
        _ = self.agents.buffer  # allocate (or refuse) the replay buffer before any folder exists
        with self._open("benchmark", config.results_dir, resume) as state:
            if isinstance(state, dict):
                return state
            if not state.curve:
                self._evaluate(state)
            with self._progress() as progress:
                # the next evaluation follows from the last one, so a resumed run picks up an
                # evaluation that was due when its checkpoint was written
                while (last := int(state.curve[-1][0])) < config.running_steps:
                    target = min(config.running_steps,
                                 (last // config.eval_interval + 1) * config.eval_interval)
                    self._train_until(target, state, progress)
                    self._evaluate(state)
            return self._finish_benchmark(state)

    def _evaluate(self, state: _RunState) -> None:
        config, agents = self.config, self.agents
        episodes = agents.evaluate(self.test_envs, config.test_episode)
        returns = episodes.returns
        mean, std = float(np.mean(returns)), float(np.std(returns))
        stats = statistics_summary(episodes)
        metric = config.eval_metric
        if metric != "return" and f"{metric}_mean" not in stats:
            reported = sorted(episodes.statistics)
            message = (f"config key 'eval_metric' = {metric!r}: env {config.env_name}/"
                       f"{config.env_id} reports no per-episode statistic of that name in its "
                       "step info; it reports "
                       + (", ".join(repr(name) for name in reported) if reported else "none")
                       + "; use eval_metric: return"
                       + (f" or one of {reported}" if reported else ""))
            if not state.curve:  # the first evaluation, before any training
                raise ConfigError(message)
            logger.warning("%s (in this evaluation at env step %d)", message, agents.env_steps)
        state.curve.append([agents.env_steps, mean, std])
        state.stats.append(stats)
        agents.run_logger.log(agents.env_steps, {
            "test_return_mean": mean, "test_return_std": std,
            "test_return_min": float(np.min(returns)),
            "test_return_max": float(np.max(returns)),
            **{f"test_{key}": value for key, value in stats.items()},
            "wall_time": state.wall()}, stream=METRICS_STREAM)
        value = mean if metric == "return" else stats.get(f"{metric}_mean", math.nan)
        if not math.isnan(value) and (state.best is None or value > state.best):
            state.best, state.best_step = value, agents.env_steps
            agents.save_model(state.run_dir / "best_model.pth")
        logger.info("seed %d, env step %d: greedy test %s %.3f (best %s); return %.3f ± %.3f",
                    config.seed, agents.env_steps, metric, value,
                    "none" if state.best is None else f"{state.best:.3f}", mean, std)
        if self.on_evaluation is not None:
            self.on_evaluation(agents.env_steps, mean)

    def _finish_benchmark(self, state: _RunState) -> dict:
        config, agents, run_dir = self.config, self.agents, state.run_dir
        agents.save_model(run_dir / "final_model.pth")
        self._final_checkpoint(state)
        agents.flush_log()
        agents.run_logger.flush()
        plot_learning_curve(run_dir, title=f"{config.method} on {config.env_name}/"
                                           f"{config.env_id}, seed {config.seed}",
                            metric=config.eval_metric)
        final, metric = state.curve[-1], config.eval_metric
        last = state.stats[-1] if state.stats else {}
        summary = {
            **self._summary_base(state),
            "final_test_return": final[1], "final_test_return_std": final[2],
            # the best evaluation's return (with another eval_metric: the highest of any)
            "best_test_return": (state.best if metric == "return"
                                 else max(point[1] for point in state.curve)),
            "best_env_step": state.best_step,
            "evaluations": len(state.curve), "test_episode": config.test_episode,
            "final_model": str(run_dir / "final_model.pth"),
            "best_model": str(run_dir / "best_model.pth"),
        }
        if metric != "return":
            summary.update({
                "eval_metric": metric,
                f"final_test_{metric}": last.get(f"{metric}_mean", math.nan),
                f"final_test_{metric}_std": last.get(f"{metric}_std", math.nan),
                f"best_test_{metric}": math.nan if state.best is None else state.best})
        summary.update({f"test_{key}": value for key, value in last.items()
                        if key.endswith("_mean")})
        write_json(summary, run_dir / SUMMARY_FILE)
        logger.info("benchmark finished: final greedy %s %.3f, best %.3f; results in %s",
                    metric, summary[f"final_test_{metric}"], summary[f"best_test_{metric}"],
                    run_dir)
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

    # --- the run folder and checkpoints -------------------------------------------------------
    @contextlib.contextmanager
    def _open(self, kind: str, root: str, resume: str | os.PathLike | None):
        """Start or resume a run folder, locked while the body runs; yields the run state, or
        the summary of the matching run when ``resume="auto"`` finds it already finished. The
        experiment is closed afterwards, whatever happened."""
        try:
            check_training_budget(self.config, self.envs.spec.max_episode_steps)
            opened = open_run(root, self.config, resume)
            if opened.finished is not None:
                self.run_dir = opened.run_dir
                yield opened.finished
                return
            lock = FolderLock(opened.run_dir)
            lock.acquire()
            try:
                if opened.checkpoint is None:
                    state = _RunState(kind, opened.run_dir)
                elif resume == "auto":
                    state = self._load_newest_intact(kind, opened.run_dir)
                else:
                    state = self._load_checkpoint(kind, opened.checkpoint)
                self.config.dump(state.run_dir / "config.yaml")
                self.agents.log_dir = state.run_dir
                self.run_dir = state.run_dir
                self._last_checkpoint_steps = self.agents.env_steps
                yield state
            finally:
                # logs, before the lock goes
                close_quietly(self.config, "training envs", self.agents.finish)
                lock.release()
        finally:
            self.close()

    def _checkpoint_due(self) -> bool:
        interval = self.config.save_interval
        return interval > 0 and (self.agents.env_steps // interval
                                 > self._last_checkpoint_steps // interval)

    def _checkpoint(self, state: _RunState) -> Path:
        agents, config = self.agents, self.config
        # the point where a checkpoint is exact: no episode in flight, whose env state it could
        # not hold (the resumed run starts each env's next episode, as this one now does)
        agents.truncate_episodes()
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

    def _load_newest_intact(self, kind: str, run_dir: Path) -> _RunState:
        """``resume="auto"``: the newest checkpoint of the run that loads; a damaged one (cut
        short by a crash or a full disk) is reported and passed over for the one before it."""
        damaged = []
        for path in reversed(list_checkpoints(run_dir)):
            try:
                return self._load_checkpoint(kind, path)
            except CheckpointError as error:
                logger.warning("resume auto: %s; trying the checkpoint before it", error)
                damaged.append(path.name)
        raise CheckpointError(f"resume auto: every checkpoint of {run_dir} is damaged "
                              f"({', '.join(damaged)}); start a new run (no --resume)")

    def _load_checkpoint(self, kind: str, path: Path) -> _RunState:
        # on the CPU: RNG states must be CPU tensors and the buffer goes back to numpy;
        # load_state_dict copies networks and optimiser state onto the agents' device
        payload = load_checkpoint(path, "cpu")
        if payload["kind"] != kind:
            raise CheckpointError(f"{path} was written by {payload['kind']}(); resume it with "
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
        """The model :meth:`test` loads: ``model_path``, else the newest final model of this
        method, env, env_id and seed, from ``run()`` (model_dir) or ``benchmark()``
        (results_dir)."""
        config = self.config
        if config.model_path:
            return Path(config.model_path)
        folders = [run_subdir(config.model_dir, config), run_subdir(config.results_dir, config)]
        candidates = [path for folder in folders
                      for path in folder.glob(f"seed_{config.seed}_*/final_model.pth")]
        if not candidates:
            raise MissingFileError(
                f"no trained model for seed {config.seed} under {folders[0]} or {folders[1]}; "
                "train first (runner.run() with is_test=False) or set config key 'model_path'")
        return max(candidates, key=lambda path: path.parent.name.split("_", 2)[-1])

    def test(self) -> float:
        """Load the trained model, play ``test_episode`` greedy episodes, return the mean; with
        ``render: true`` also save a GIF of the first episode (path in ``self.gif_path``)."""
        config = self.config
        try:
            path = self.find_model()
            load_policy(self.agents.policy, read_model(path, self.config, self.agents.device),
                        self.config, path)
            self.agents.learner.sync_targets()
            frames: list | None = [] if config.render else None
            episodes = self.agents.evaluate(self.test_envs, config.test_episode, frames=frames)
            mean = float(np.mean(episodes.returns))
            statistics = "".join(f", {key} {value:.3f}" for key, value
                                 in statistics_summary(episodes).items() if key.endswith("_mean"))
            logger.info("test: mean return %.3f%s over %d greedy episodes (model %s)", mean,
                        statistics, len(episodes), path)
            if frames is not None:
                self.gif_path = self._save_gif(frames, path)
        finally:
            self.close()
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

