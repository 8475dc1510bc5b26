"""Agents: a policy, its learner, the replay buffer and exploration, and the loop that feeds
them from a vectorised env.

Collection is continuous (:class:`~xwq.agents.rollout.Rollout`): every env plays its own
episodes, and the moment one ends it goes to the buffer and that env starts its next. Training
env k's e-th episode is reset with ``episode_seed(seed, TRAIN_EPISODES, k, e)``
(:func:`xwq.common.seeding.episode_seed`), so the data depend only on the run seed, never on
timing or on serial vs subprocess vectorisation. Updates follow env steps: after every
vectorised step, ``1 / training_frequency`` updates per env step are due, whatever
``parallels`` is. Training stops at the first vectorised step that reaches its target, at most
``parallels - 1`` env steps beyond it.

Checkpoints and in-flight episodes: an env's internal state cannot be saved in general, so a
checkpoint is taken at a point where nothing depends on it — :meth:`MARLAgents.truncate_episodes`
first ends every episode in flight as a time limit would (stored in the buffer; the learner
bootstraps through its last step) and every env starts its next episode, with its next seed, on
the next step. A run resumed from that checkpoint starts the very same episodes, so it continues
exactly as the uninterrupted run does (same losses, returns and parameters on CPU).

Evaluation (:meth:`MARLAgents.evaluate`) plays a fixed set of greedy episodes with fixed seeds
and counts no env step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xwq.agents.buffer import EpisodeBuffer
from xwq.agents.rollout import Actor, Episodes, Rollout, play_episodes
from xwq.common.checkpoint import atomic_save, safe_load
from xwq.common.process import resolve_device
from xwq.common.run_logger import RunLogger
from xwq.common.seeding import (
    TEST_EPISODES,
    TRAIN_EPISODES,
    episode_seed,
    get_rng_states,
    set_rng_states,
)
from xwq.environment.interfaces import VecEnv
from xwq.errors import ConfigError
from xwq.policies.exploration import EpsilonSchedule, epsilon_greedy
from xwq.registry import REGISTRY_LEARNER, REGISTRY_POLICY

logger = logging.getLogger(__name__)


class MARLAgents:
    """Value-decomposition agents (base of IQL/VDN/QMIX/WQMIX_Agents).

    Args:
        config: a resolved :class:`xwq.Config`.
        envs: the vectorised training env (:func:`xwq.make_envs`).
        log_dir: where training scalars go (TensorBoard, CSV, JSONL); default
            ``<config.log_dir>/<method>/<env>/<env_id>/seed_<seed>``.
    """

    #: config values this agent class needs, checked at construction: key -> allowed values
    requires: dict[str, tuple] = {}

    def __init__(self, config: Any, envs: VecEnv, log_dir: str | Path | None = None) -> None:
        for key, allowed in self.requires.items():
            if getattr(config, key) not in allowed:
                raise ConfigError(
                    f"{type(self).__name__} needs config key '{key}' in {list(allowed)}, got "
                    f"{getattr(config, key)!r}")
        self.config = config
        self.envs = envs
        #: the env's spec as the agents see it: the state from the observations when
        #: ``state_source: observations`` (the mixers' state_dim and the buffer follow it)
        self.spec = envs.spec.with_state_source(config.state_source)
        self.device = resolve_device(config.device)
        # the networks' initial values depend on config.seed alone, and building agents leaves
        # the process's global RNGs as they were (seeding the process is the run's entry point's
        # job: xwq.common.process.setup_process)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.policy = REGISTRY_POLICY[config.policy](config, self.spec).to(self.device)
        self.learner = REGISTRY_LEARNER[config.learner](config, self.policy)
        self._buffer: EpisodeBuffer | None = None  # allocated on first use: tests need none
        self.epsilon = EpsilonSchedule(config.start_greedy, config.end_greedy,
                                       config.decay_step_greedy)
        self.rng = np.random.default_rng(config.seed)  # action sampling and batch sampling
        self.env_steps = 0
        self.episodes = 0  # episodes stored in the buffer (checkpoint truncations included)
        #: per training env, the count of the episode it plays now (or next, when collection
        #: (re)starts): the e in its episode seed
        self.env_episodes = np.zeros(envs.num_envs, dtype=np.int64)
        self._rollout: Rollout | None = None
        self.update_credit = 0.0
        self.log_dir = Path(log_dir) if log_dir else (
            Path(config.log_dir) / config.method / config.env_name / config.env_id
            / f"seed_{config.seed}")
        self._run_logger: RunLogger | None = None
        self._log_since = 0
        self._recent: dict[str, list[float]] = {}
        self._log_steps, self._log_seconds = 0, 0.0  # env steps and seconds since the last row

    @property
    def buffer(self) -> EpisodeBuffer:
        """The replay buffer, allocated on first use (``buffer_size`` episodes, refused with a
        BufferTooLargeError above ``buffer_memory_budget_mb``); greedy tests never allocate it."""
        if self._buffer is None:
            self._buffer = EpisodeBuffer(self.config.buffer_size, self.spec,
                                         self.config.buffer_memory_budget_mb)
        return self._buffer

    # --- acting ------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, avail: np.ndarray, prev_actions: torch.Tensor,
            hidden: torch.Tensor | None, test_mode: bool = False
            ) -> tuple[np.ndarray, torch.Tensor | None]:
        """Actions for K envs at once: ``obs [K, n, o]`` (the env's dtype; the policy scales
        it), ``avail [K, n, A]``, ``prev_actions [K, n]`` int64 (-1: none; on the CPU, see
        :data:`~xwq.agents.rollout.Actor`) -> ``[K, n]``.

        One batched forward pass; ε-greedy per agent over available actions unless
        ``test_mode`` (greedy).
        """
        greedy_actions = getattr(self.policy, "greedy_actions", None)
        if greedy_actions is not None:
            actions, hidden = greedy_actions(obs, prev_actions, avail, hidden)
        else:  # a user's policy with only ``greedy``
            obs_t = torch.as_tensor(obs, device=self.device)
            avail_t = torch.as_tensor(avail, device=self.device)
            greedy, hidden = self.policy.greedy(obs_t, prev_actions.to(self.device), avail_t,
                                                hidden)
            actions = greedy.cpu().numpy()
        if not test_mode:
            actions = epsilon_greedy(actions, avail, self.epsilon(self.env_steps), self.rng)
        return actions, hidden

    # --- collecting --------------------------------------------------------------------------
    def _rollout_on(self, envs: VecEnv, seed_of: Callable[[int, int], int],
                    first_episodes: np.ndarray | None, test_mode: bool,
                    actor: Actor | None = None) -> Rollout:
        if actor is None:
            def actor(obs, avail, prev_actions, hidden):
                return self.act(obs, avail, prev_actions, hidden, test_mode)
        return Rollout(envs, actor, lambda rows: self.policy.agent.initial_hidden(rows,
                                                                                  self.device),
                       seed_of, first_episodes, keep_data=not test_mode, spec=self.spec)

    @property
    def rollout(self) -> Rollout:
        """The training envs' continuous collection; (re)started on first use, every env at
        its episode count in :attr:`env_episodes`."""
        if self._rollout is None:
            seed = self.config.seed
            self._rollout = self._rollout_on(
                self.envs, lambda k, e: episode_seed(seed, TRAIN_EPISODES, k, e),
                self.env_episodes, test_mode=False)
        return self._rollout

    def collect(self) -> Episodes:
        """One vectorised step of training collection (ε-greedy): every env steps once, the
        env steps are counted, and the episodes that ended go to the buffer (returned)."""
        finished = self.rollout.step()
        self.env_steps += self.envs.num_envs
        self._store(finished)
        return finished

    def _store(self, episodes: Episodes) -> None:
        if len(episodes):
            self.buffer.add(episodes.data)
            self.episodes += len(episodes)
            np.add.at(self.env_episodes, episodes.envs, 1)

    def truncate_episodes(self) -> None:
        """End every training episode in flight now, as a time limit would: each one with at
        least one step goes to the buffer (the learner bootstraps through its last step, as at
        any time limit; its partial return is not logged as an episode's), and every env starts
        its next episode, with its next seed, on the next step. After this, :meth:`state_dict`
        holds everything a run needs to continue exactly: this is what a checkpoint calls
        first."""
        if self._rollout is not None:
            self._store(self._rollout.truncate())
            self._rollout = None

    # --- training ----------------------------------------------------------------------------
    @property
    def run_logger(self) -> RunLogger:
        if self._run_logger is None:
            self._run_logger = RunLogger(self.log_dir)
        return self._run_logger

    def train(self, n_steps: int = 0, callback: Callable[[MARLAgents], None] | None = None,
              progress: Any = None, until_env_steps: int | None = None) -> dict[str, float]:
        """Collect and learn for ``n_steps`` vectorised steps (``n_steps × parallels`` env
        steps, XuanCe's convention), or — given ``until_env_steps`` — until the first vectorised
        step that reaches that many env steps in total (at most ``parallels - 1`` beyond it; a
        stop that does not depend on where training started, which an exact resume needs).

        Every vectorised step: each env steps once (:meth:`collect`), the episodes that ended
        go to the buffer, the updates now due run (one per ``training_frequency`` env steps or
        episodes, ``training_unit``),
        then ``callback(agents)``. Episodes in flight carry over to the next call.

        Returns the training statistics of the last vectorised step that made updates (empty if
        none did).
        """
        K = self.envs.num_envs
        target = (self.env_steps + n_steps * K if until_env_steps is None else until_env_steps)
        stats: dict[str, float] = {}
        while self.env_steps < target:
            start = time.perf_counter()
            finished = self.collect()
            step_stats = self._learn(K, len(finished))
            if step_stats:
                stats = step_stats
            self._record(finished, step_stats, K, time.perf_counter() - start)
            if progress is not None:
                progress.update(K)
                if len(finished):
                    progress.set_postfix(eps=f"{self.epsilon(self.env_steps):.2f}",
                                         ret=f"{np.mean(finished.returns):.2f}", refresh=False)
            if callback is not None:
                callback(self)
        self.flush_log()
        return stats

    def _learn(self, new_steps: int, new_episodes: int = 0) -> dict[str, float]:
        return self._apply_updates(self._due_batches(new_steps, new_episodes))

    def _due_batches(self, new_steps: int, new_episodes: int = 0
                     ) -> list[dict[str, torch.Tensor]]:
        """The batches of the updates due after ``new_steps`` more env steps that ended
        ``new_episodes`` episodes (one update per ``training_frequency`` env steps, or episodes
        with ``training_unit: episodes``, once the buffer holds a batch), sampled with the
        agents' RNG."""
        config = self.config
        if self.env_steps < config.start_training or not self.buffer.can_sample(
                config.batch_size):
            return []
        work = new_episodes if config.training_unit == "episodes" else new_steps
        self.update_credit += work / config.training_frequency
        batches = []
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batches.append(self.buffer.sample(config.batch_size, self.rng, self.device))
        return batches

    def _apply_updates(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One learner update per batch; returns the mean of each training statistic (a seed
        group's member runs them with the other seeds': :mod:`xwq.agents.seed_group`)."""
        collected: dict[str, list[float]] = {}
        for batch in batches:
            for key, value in self.learner.update(batch, episodes=self.episodes).items():
                collected.setdefault(key, []).append(value)
        return {key: float(np.mean(values)) for key, values in collected.items()}

    def _record(self, finished: Episodes, stats: dict[str, float], steps: int,
                seconds: float) -> None:
        recent = self._recent
        if len(finished):
            recent.setdefault("episode_return", []).extend(finished.returns.tolist())
            recent.setdefault("episode_length", []).extend(finished.lengths.tolist())
            for name, values in finished.statistics.items():
                recent.setdefault(f"episode_{name}", []).extend(
                    values[~np.isnan(values)].tolist())
        for key, value in stats.items():
            recent.setdefault(key, []).append(value)
        self._log_steps += steps
        self._log_seconds += seconds
        # a row waits for an ended episode, so that every row (and the CSV's columns, fixed by
        # the first row) has the episode statistics
        if self.env_steps - self._log_since >= self.config.log_interval \
                and "episode_return" in recent:
            self.flush_log()

    def flush_log(self) -> None:
        """Write the means of the training statistics gathered since the last row: losses,
        ``episode_return``, ``episode_length`` and ``episode_<name>`` for each statistic the
        env reports (means over the episodes that ended), ``steps_per_second``."""
        values = {key: float(np.mean(v)) for key, v in self._recent.items() if v}
        if self._log_steps and self._log_seconds > 0:
            values["steps_per_second"] = self._log_steps / self._log_seconds
        if not values:
            return
        values["epsilon"] = self.epsilon(self.env_steps)
        values["updates"] = self.learner.updates
        self.run_logger.log(self.env_steps, values, stream="train")
        self._log_since = self.env_steps
        self._recent = {}
        self._log_steps, self._log_seconds = 0, 0.0

    # --- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, envs: VecEnv, n_episodes: int, frames: list | None = None,
                 actor: Actor | None = None) -> Episodes:
        """Play ``n_episodes`` greedy episodes on ``envs`` and return them (returns, lengths,
        env statistics; no arrays kept).

        They are the evaluation episodes 0 .. n-1: episode j is reset with
        ``episode_seed(seed, TEST_EPISODES, 0, j)`` and played by env ``j % K``
        (:func:`~xwq.agents.rollout.play_episodes`), so every call plays the same episodes,
        whatever the number of envs, and evaluations along a run are comparable. Counts no env
        step and leaves every training counter and RNG untouched. ``actor`` plays them another
        way (e.g. a uniform random baseline); ``frames`` collects env 0's first episode.
        """
        K, seed = envs.num_envs, self.config.seed
        rollout = self._rollout_on(
            envs, lambda k, i: episode_seed(seed, TEST_EPISODES, 0, k + i * K), None,
            test_mode=True, actor=actor)
        return play_episodes(rollout, n_episodes, frames)

    def test(self, envs: VecEnv, n_episodes: int, frames: list | None = None) -> list[float]:
        """The greedy returns of :meth:`evaluate`'s ``n_episodes`` episodes, in order."""
        return self.evaluate(envs, n_episodes, frames).returns.tolist()

    # --- saving ------------------------------------------------------------------------------
    def save_model(self, path: str | Path) -> Path:
        """Save the policy's parameters (online networks) atomically to ``path``."""
        return atomic_save({"policy": self.policy.state_dict(),
                            "config": self.config.to_dict()}, path)

    def load_model(self, path: str | Path) -> None:
        """Load parameters saved by :meth:`save_model` (or a checkpoint); targets follow."""
        state = safe_load(path, self.device)
        self.policy.load_state_dict(state["policy"])
        self.learner.sync_targets()

    def state_dict(self, include_buffer: bool = False) -> dict:
        """Everything needed to continue this run exactly (CPU) after
        :meth:`truncate_episodes`: networks, optimiser, counters (each env's episode count
        among them), and the RNG states of python, numpy, torch and action sampling. Episodes
        still in flight are not part of it: a run resumed from it restarts them from their
        first step."""
        state = {
            "policy": self.policy.state_dict(), "learner": self.learner.state_dict(),
            "counters": {"env_steps": self.env_steps, "episodes": self.episodes,
                         "env_episodes": self.env_episodes.tolist(),
                         "update_credit": self.update_credit, "log_since": self._log_since},
            "epsilon": self.epsilon(self.env_steps),
            "rng": {"global": get_rng_states(), "agents": self.rng.bit_generator.state},
            "config": self.config.to_dict(),
        }
        if include_buffer:
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.learner.load_state_dict(state["learner"])
        counters = state["counters"]
        self.env_steps, self.episodes = counters["env_steps"], counters["episodes"]
        K = self.envs.num_envs
        # checkpoints from before per-env counts: let each env start past the episodes played
        self.env_episodes = np.array(counters.get("env_episodes", [self.episodes // K] * K),
                                     dtype=np.int64)
        self._rollout = None
        self.update_credit, self._log_since = counters["update_credit"], counters["log_since"]
        set_rng_states(state["rng"]["global"])
        self.rng.bit_generator.state = state["rng"]["agents"]
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
        self._recent = {}
        self._log_steps, self._log_seconds = 0, 0.0

    def finish(self) -> None:
        """Close the logger and the envs."""
        if self._run_logger is not None:
            self._run_logger.close()
            self._run_logger = None
        self._rollout = None
        self.envs.close()
