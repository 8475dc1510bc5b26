"""Agents: a policy, its learner, the replay buffer and exploration, and the loop that feeds
them from a vectorised env.

Collection runs in *rounds*: all K envs start an episode together (reset with seeds derived from
the run seed and the episode count) and the round ends when every env's episode has ended; envs
that finish early keep stepping but nothing of theirs is stored. Rounds make a run exactly
resumable from counters and RNG states alone, and are free for fixed-length envs (MPE).
Updates follow env steps: ``1 / training_frequency`` updates per env step, whatever
``parallels`` is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xwq.agents.buffer import EpisodeBuffer, episode_layout
from xwq.common.checkpoint import atomic_save, safe_load
from xwq.common.process import resolve_device
from xwq.common.run_logger import RunLogger
from xwq.common.seeding import get_rng_states, set_rng_states
from xwq.environment.interfaces import VecEnv
from xwq.errors import ConfigError
from xwq.policies.exploration import EpsilonSchedule, epsilon_greedy
from xwq.registry import REGISTRY_LEARNER, REGISTRY_POLICY

logger = logging.getLogger(__name__)

TEST_SEED_OFFSET = 10**9  # evaluation episodes never reuse a training episode's seed


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
        self.spec = envs.spec
        self.device = resolve_device(config.device)
        # the networks' initial values depend on config.seed alone, and building agents leaves
        # the process's global RNGs as they were (seeding the process is the run's entry point's
        # job: xwq.common.process.setup_process)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.policy = REGISTRY_POLICY[config.policy](config, self.spec).to(self.device)
        self.learner = REGISTRY_LEARNER[config.learner](config, self.policy)
        self.buffer = EpisodeBuffer(config.buffer_size, self.spec, config.buffer_memory_budget_mb)
        self.epsilon = EpsilonSchedule(config.start_greedy, config.end_greedy,
                                       config.decay_step_greedy)
        self.rng = np.random.default_rng(config.seed)  # action sampling and batch sampling
        self.env_steps = 0
        self.episodes = 0
        self.update_credit = 0.0
        self.log_dir = Path(log_dir) if log_dir else (
            Path(config.log_dir) / config.method / config.env_name / config.env_id
            / f"seed_{config.seed}")
        self._run_logger: RunLogger | None = None
        self._log_since = 0
        self._recent: dict[str, list[float]] = {}
        self._last_returns: list[float] = []

    # --- acting ------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, avail: np.ndarray, prev_actions: torch.Tensor,
            hidden: torch.Tensor | None, test_mode: bool = False
            ) -> tuple[np.ndarray, torch.Tensor | None]:
        """Actions for K envs at once: ``obs [K, n, o]``, ``avail [K, n, A]`` -> ``[K, n]``.

        One batched forward pass; ε-greedy per agent over available actions unless
        ``test_mode`` (greedy).
        """
        obs_t = torch.as_tensor(obs, device=self.device)
        avail_t = torch.as_tensor(avail, device=self.device)
        greedy, hidden = self.policy.greedy(obs_t, prev_actions, avail_t, hidden)
        actions = greedy.cpu().numpy()
        if not test_mode:
            actions = epsilon_greedy(actions, avail, self.epsilon(self.env_steps), self.rng)
        return actions, hidden

    def run_round(self, envs: VecEnv, seed: int, test_mode: bool = False,
                  frames: list | None = None) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                       np.ndarray]:
        """Play one episode in each of the K envs (reset with ``seed``).

        Returns:
            episodes: fields ``[K, ...]`` in the buffer's layout; returns ``[K]``; lengths ``[K]``.
        """
        K, n = envs.num_envs, self.spec.n_agents
        episodes = {key: np.zeros((K, *shape), dtype=dtype)
                    for key, (shape, dtype) in episode_layout(self.spec).items()}
        obs, state, avail = envs.reset(seed=seed)
        episodes["obs"][:, 0], episodes["state"][:, 0], episodes["avail"][:, 0] = obs, state, avail
        hidden = self.policy.agent.initial_hidden(K * n, self.device)
        prev_actions = torch.full((K, n), -1, dtype=torch.long, device=self.device)
        active = np.ones(K, dtype=bool)
        returns, lengths = np.zeros(K), np.zeros(K, dtype=np.int64)
        for t in range(self.spec.max_episode_steps):
            actions, hidden = self.act(obs, avail, prev_actions, hidden, test_mode)
            if frames is not None and active[0]:
                frames.append(envs.render(0))
            result = envs.step(actions)
            rows = np.flatnonzero(active)
            episodes["actions"][rows, t] = actions[rows]
            episodes["reward"][rows, t] = result.reward[rows]
            episodes["terminated"][rows, t] = result.terminated[rows]
            episodes["filled"][rows, t] = True
            episodes["obs"][rows, t + 1] = result.final_obs[rows]
            episodes["state"][rows, t + 1] = result.final_state[rows]
            episodes["avail"][rows, t + 1] = result.final_avail[rows]
            returns[rows] += result.reward[rows]
            lengths[rows] += 1
            if not test_mode:
                self.env_steps += len(rows)
            active &= ~result.done
            if not active.any():
                break
            obs, avail = result.obs, result.avail
            prev_actions = torch.as_tensor(actions, device=self.device)
        if frames is not None:
            frames.append(envs.render(0))
        return episodes, returns, lengths

    # --- training ----------------------------------------------------------------------------
    @property
    def run_logger(self) -> RunLogger:
        if self._run_logger is None:
            self._run_logger = RunLogger(self.log_dir)
        return self._run_logger

    def train(self, n_steps: int = 0, callback: Callable[[MARLAgents], None] | None = None,
              progress: Any = None, until_env_steps: int | None = None) -> dict[str, float]:
        """Collect and learn for ``n_steps`` vectorised steps (``n_steps × parallels`` env
        steps, XuanCe's convention), or — given ``until_env_steps`` — until the first round
        that ends at or after that many env steps in total (a stop that does not depend on
        where training started: what an exact resume needs). ``callback(agents)`` runs after
        every round.

        Returns the mean of the last round's training statistics.
        """
        target = (self.env_steps + n_steps * self.envs.num_envs if until_env_steps is None
                  else until_env_steps)
        stats: dict[str, float] = {}
        while self.env_steps < target:
            before = self.env_steps
            start = time.perf_counter()
            seed = self.config.seed * 1_000_003 + self.episodes
            episodes, returns, lengths = self.run_round(self.envs, seed)
            self.buffer.add(episodes)
            self.episodes += len(returns)
            self._last_returns = returns.tolist()
            stats = self._learn(self.env_steps - before)
            self._record(returns, lengths, stats, self.env_steps - before,
                         time.perf_counter() - start)
            if progress is not None:
                progress.update(self.env_steps - before)
                progress.set_postfix(eps=f"{self.epsilon(self.env_steps):.2f}",
                                     ret=f"{np.mean(returns):.2f}", refresh=False)
            if callback is not None:
                callback(self)
        self.flush_log()
        return stats

    def _learn(self, new_steps: int) -> dict[str, float]:
        config = self.config
        if self.env_steps < config.start_training or not self.buffer.can_sample(
                config.batch_size):
            return {}
        self.update_credit += new_steps / config.training_frequency
        collected: dict[str, list[float]] = {}
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = self.buffer.sample(config.batch_size, self.rng, self.device)
            for key, value in self.learner.update(batch, episodes=self.episodes).items():
                collected.setdefault(key, []).append(value)
        return {key: float(np.mean(values)) for key, values in collected.items()}

    def _record(self, returns: np.ndarray, lengths: np.ndarray, stats: dict[str, float],
                steps: int, seconds: float) -> None:
        recent = self._recent
        recent.setdefault("episode_return", []).extend(returns.tolist())
        recent.setdefault("episode_length", []).extend(lengths.tolist())
        recent.setdefault("steps_per_second", []).append(steps / max(seconds, 1e-9))
        for key, value in stats.items():
            recent.setdefault(key, []).append(value)
        if self.env_steps - self._log_since >= self.config.log_interval:
            self.flush_log()

    def flush_log(self) -> None:
        """Write the means of the training statistics gathered since the last row."""
        if not self._recent:
            return
        values = {key: float(np.mean(v)) for key, v in self._recent.items()}
        values["epsilon"] = self.epsilon(self.env_steps)
        values["updates"] = self.learner.updates
        self.run_logger.log(self.env_steps, values, stream="train")
        self._log_since = self.env_steps
        self._recent = {}

    # --- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def test(self, envs: VecEnv, n_episodes: int, frames: list | None = None) -> list[float]:
        """Greedy returns of ``n_episodes`` episodes on ``envs`` (the same seeds every call,
        so evaluations along a run are comparable). Leaves every training counter and RNG
        untouched."""
        returns: list[float] = []
        round_index = 0
        while len(returns) < n_episodes:
            seed = TEST_SEED_OFFSET + self.config.seed * 1_000_003 + round_index * envs.num_envs
            _, round_returns, _ = self.run_round(
                envs, seed, test_mode=True, frames=frames if round_index == 0 else None)
            returns.extend(round_returns.tolist())
            round_index += 1
        return returns[:n_episodes]

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
        """Everything needed to continue this run exactly (CPU): networks, optimiser, counters,
        and the RNG states of python, numpy, torch and action sampling."""
        state = {
            "policy": self.policy.state_dict(), "learner": self.learner.state_dict(),
            "counters": {"env_steps": self.env_steps, "episodes": self.episodes,
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
        self.update_credit, self._log_since = counters["update_credit"], counters["log_since"]
        set_rng_states(state["rng"]["global"])
        self.rng.bit_generator.state = state["rng"]["agents"]
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
        self._recent = {}

    def finish(self) -> None:
        """Close the logger and the envs."""
        if self._run_logger is not None:
            self._run_logger.close()
            self._run_logger = None
        self.envs.close()
