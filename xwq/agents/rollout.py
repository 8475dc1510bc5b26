"""Continuous collection: K envs, each playing its own episodes back to back.

A :class:`Rollout` steps a :class:`~xwq.environment.VecEnv` with one batched choice of actions
per step. The moment env k's episode ends it is handed over whole — in the replay buffer's
layout, with its return, length and env statistics — and env k is already playing its next one:
the vec env autoresets it with the seed of that next episode, ``seed_of(k, e)``, and the rollout
resets env k's hidden state and previous action. The other envs carry on undisturbed, so no env
is ever stepped without the step being kept.

Episode statistics (see :mod:`xwq.environment.interfaces`): each env's ``StepResult.info``
values are tracked per episode, keeping for each name the value of the last step that reported
it; a finished episode carries those values.

:meth:`Rollout.truncate` ends every episode in flight early, as a time limit would (the learner
bootstraps through the last step): what training does at a checkpoint, so that a checkpoint
never needs an env's internal state (:mod:`xwq.agents.base`). :func:`play_episodes` plays a
fixed set of episodes (evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xwq.agents.buffer import episode_layout
from xwq.environment.adapters.array_env import RESERVED_STATISTICS
from xwq.environment.interfaces import EnvSpec, VecEnv

#: ``actor(obs [K, n, o], avail [K, n, A], prev_actions [K, n], hidden) -> (actions [K, n],
#: hidden)``: one batched choice of actions (``MARLAgents.act`` with its mode bound). The
#: previous actions are an int64 CPU tensor (-1: none yet): they come from numpy and acting
#: reads them on the host, so they never make a round trip through an accelerator.
Actor = Callable[[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor | None],
                 tuple[np.ndarray, torch.Tensor | None]]


@dataclass
class Episodes:
    """m finished episodes (m may be 0).

    Attributes:
        data: fields ``[m, ...]`` in the buffer layout (:func:`episode_layout`; unused steps
            zero), or None when the rollout does not keep them (evaluation).
        returns: ``[m]`` float64 sum of team rewards; lengths: ``[m]`` int64 env steps.
        statistics: name -> ``[m]`` float64, the env's per-episode statistics (NaN for an
            episode that did not report that name).
        envs: ``[m]`` which env played each; numbers: ``[m]`` its episode count in that env.
    """

    data: dict[str, np.ndarray] | None
    returns: np.ndarray
    lengths: np.ndarray
    statistics: dict[str, np.ndarray]
    envs: np.ndarray
    numbers: np.ndarray

    def __len__(self) -> int:
        return len(self.returns)

    def select(self, index: np.ndarray) -> Episodes:
        """The episodes at ``index`` (a bool mask or integer positions)."""
        data = None if self.data is None else {k: v[index] for k, v in self.data.items()}
        return Episodes(data, self.returns[index], self.lengths[index],
                        {k: v[index] for k, v in self.statistics.items()}, self.envs[index],
                        self.numbers[index])

    @staticmethod
    def concatenate(parts: Sequence[Episodes]) -> Episodes:
        """One :class:`Episodes` of all of ``parts`` in order (statistics NaN-filled where a
        part lacks a name)."""
        names = sorted({name for part in parts for name in part.statistics})
        statistics = {name: np.concatenate([part.statistics.get(name, np.full(len(part), np.nan))
                                            for part in parts]) for name in names}
        datas = [part.data for part in parts]
        data = None if any(d is None for d in datas) else {
            key: np.concatenate([d[key] for d in datas]) for key in datas[0]}
        return Episodes(data, np.concatenate([p.returns for p in parts]),
                        np.concatenate([p.lengths for p in parts]), statistics,
                        np.concatenate([p.envs for p in parts]),
                        np.concatenate([p.numbers for p in parts]))


class Rollout:
    """K envs, each playing its own episodes one after another.

    Args:
        envs: the vectorised env (K = ``envs.num_envs``); reset here.
        actor: chooses actions for the K envs at once (:data:`Actor`).
        initial_hidden: ``initial_hidden(rows)`` -> zero hidden state ``[rows, H]`` (or None).
        seed_of: ``seed_of(k, e)`` -> the reset seed of env k's e-th episode.
        first_episodes: ``[K]`` the episode count each env starts at (default zeros).
        keep_data: keep the episodes' arrays (training) or only their returns, lengths and
            statistics (evaluation).
        spec: the spec whose buffer layout the kept arrays take (default ``envs.spec``; the
            agents' own when their state comes from the observations: then no state is kept).
            Observations and state are kept in the env's dtype, as the buffer stores them.

    Attributes:
        counts: ``[K]`` the count of the episode each env is playing (= episodes it finished,
            if it started at 0); t: ``[K]`` steps taken in it so far.
    """

    def __init__(self, envs: VecEnv, actor: Actor,
                 initial_hidden: Callable[[int], torch.Tensor | None],
                 seed_of: Callable[[int, int], int],
                 first_episodes: np.ndarray | Sequence[int] | None = None,
                 keep_data: bool = True, spec: EnvSpec | None = None) -> None:
        self.envs, self.actor, self.seed_of = envs, actor, seed_of
        spec = envs.spec if spec is None else spec
        self.num_envs, self.n_agents = K, n = envs.num_envs, spec.n_agents
        self.counts = (np.zeros(K, dtype=np.int64) if first_episodes is None
                       else np.array(first_episodes, dtype=np.int64))
        self.t = np.zeros(K, dtype=np.int64)
        self.returns = np.zeros(K)
        self.statistics: dict[str, np.ndarray] = {}  # name -> [K] latest value this episode
        self.data = None if not keep_data else {
            key: np.zeros((K, *shape), dtype=dtype)
            for key, (shape, dtype) in episode_layout(spec).items()}
        self._rows = np.arange(K)
        self._none = self._hand_over(np.zeros(0, dtype=np.int64))  # what most steps return
        self.hidden = initial_hidden(K * n)
        self.prev_actions = torch.full((K, n), -1, dtype=torch.long)
        self.next_seeds = [seed_of(k, int(e) + 1) for k, e in enumerate(self.counts)]
        obs, state, avail = envs.reset(seed=[seed_of(k, int(e))
                                             for k, e in enumerate(self.counts)])
        self._start(self._rows, obs, state, avail)
        self.obs, self.avail = obs, avail

    def _start(self, envs: np.ndarray, obs: np.ndarray, state: np.ndarray,
               avail: np.ndarray) -> None:
        """Record the first observation of the episodes that envs ``envs`` now begin (their
        rows are zero); ``obs``/``state``/``avail`` are the vec env's ``[K, ...]`` arrays."""
        if self.data is not None:
            self.data["obs"][envs, 0] = obs[envs]
            if "state" in self.data:
                self.data["state"][envs, 0] = state[envs]
            self.data["avail"][envs, 0] = avail[envs]

    def step(self) -> Episodes:
        """One step of every env; returns the episodes that ended in it (their envs have
        already started the next)."""
        actions, self.hidden = self.actor(self.obs, self.avail, self.prev_actions, self.hidden)
        result = self.envs.step(actions, reset_seeds=self.next_seeds)
        rows, t = self._rows, self.t
        if (t == t[0]).all():  # every env at the same step (fixed-length episodes): slices
            rows, t = slice(None), int(t[0])  # write faster than fancy indexing
        if self.data is not None:
            data = self.data
            data["actions"][rows, t] = actions
            data["reward"][rows, t] = result.reward
            data["terminated"][rows, t] = result.terminated
            data["filled"][rows, t] = True
            data["obs"][rows, t + 1] = result.final_obs
            if "state" in data:
                data["state"][rows, t + 1] = result.final_state
            data["avail"][rows, t + 1] = result.final_avail
        self.returns += result.reward
        self.t += 1
        self._track(result.info)
        prev_actions = torch.as_tensor(actions, dtype=torch.long)
        ended = np.flatnonzero(result.done)
        finished = self._none
        if ended.size:
            finished = self._hand_over(ended)
            self._restart(ended)
            self._start(ended, result.obs, result.state, result.avail)
            prev_actions[torch.from_numpy(ended)] = -1
        self.prev_actions = prev_actions
        self.obs, self.avail = result.obs, result.avail
        return finished

    def truncate(self) -> Episodes:
        """End every episode in flight (with at least one step) here, as a time limit would,
        and return them. Their envs' counts move on, so a new :class:`Rollout` started from
        :attr:`counts` begins each env's *next* episode; this one must not be stepped again."""
        ended = np.flatnonzero(self.t > 0)
        fragments = self._hand_over(ended)
        self.counts[ended] += 1
        self.t[:] = 0
        return fragments

    def _track(self, info: dict[str, np.ndarray]) -> None:
        """Keep, per env and name, the latest statistic reported in this episode."""
        K = self.num_envs
        for name, values in info.items():
            values = np.asarray(values)
            if values.shape != (K,) or values.dtype.kind not in "biuf" \
                    or name in RESERVED_STATISTICS:
                continue  # not a per-env number (e.g. native MPE's per-agent rewards)
            latest = self.statistics.get(name)
            if latest is None:
                latest = self.statistics[name] = np.full(K, np.nan)
            values = values.astype(np.float64)
            reported = ~np.isnan(values)
            latest[reported] = values[reported]

    def _hand_over(self, ended: np.ndarray) -> Episodes:
        data = None if self.data is None else {k: v[ended] for k, v in self.data.items()}
        statistics = {name: latest[ended] for name, latest in self.statistics.items()
                      if not np.isnan(latest[ended]).all()}
        return Episodes(data, self.returns[ended], self.t[ended].copy(), statistics, ended,
                        self.counts[ended].copy())

    def _restart(self, ended: np.ndarray) -> None:
        """Clear the per-episode state of the envs in ``ended``: they begin their next
        episode (already reset by the vec env)."""
        if self.data is not None:
            for array in self.data.values():
                array[ended] = 0
        self.t[ended] = 0
        self.returns[ended] = 0.0
        for latest in self.statistics.values():
            latest[ended] = np.nan
        self.counts[ended] += 1
        for k in ended:
            self.next_seeds[k] = self.seed_of(int(k), int(self.counts[k]) + 1)
        if self.hidden is not None:
            self.hidden.view(self.num_envs, self.n_agents, -1)[
                torch.as_tensor(ended, device=self.hidden.device)] = 0.0


def play_episodes(rollout: Rollout, n_episodes: int, frames: list | None = None) -> Episodes:
    """Play the episodes numbered 0 .. n_episodes-1, episode j in env ``j % K`` as that env's
    ``j // K``-th (so which episodes are played depends only on the rollout's seeds, never on
    their lengths), and return them in that order. Envs past their share keep stepping until
    the last one ends; their extra episodes are dropped. ``frames`` collects ``render(0)``
    before each step of env 0's first episode."""
    if n_episodes < 1:
        raise ValueError(f"play_episodes: n_episodes must be at least 1, got {n_episodes}")
    K = rollout.num_envs
    share = np.array([len(range(k, n_episodes, K)) for k in range(K)])
    parts = []
    while (rollout.counts < share).any():
        if frames is not None and rollout.counts[0] == 0:
            frames.append(rollout.envs.render(0))
        finished = rollout.step()
        parts.append(finished.select(finished.numbers < share[finished.envs]))
    episodes = Episodes.concatenate(parts)
    return episodes.select(np.argsort(episodes.envs + K * episodes.numbers, kind="stable"))
