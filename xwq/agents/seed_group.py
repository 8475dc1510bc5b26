"""Several seeds trained as one batch: a seed group.

S seeds of one configuration each keep their own agents (:class:`~xwq.agents.base.MARLAgents`):
their own parameters, optimiser state, target networks, replay buffer, ε, RNG streams, env
batch, counters and logs. A :class:`SeedGroup` makes them *members*: their networks become rows
of stacked parameters (:class:`~xwq.learners.stacked.StackedLearner`), and each member, driven
by its own training loop in its own thread (:func:`xwq.runners.vectorized.execute_group`), meets
the others at two points of every vectorised step:

- **act**: the greedy actions of all members' envs and agents come from one forward pass
  (:class:`~xwq.policies.stacked.StackedGreedy`); each member then draws its ε-greedy
  exploration with its own RNG, as alone;
- **learn**: each member samples its due batches from its own buffer with its own RNG, and the
  updates of all members run together (round r updates the members with an r-th batch).

Everything else — env steps, evaluation (greedy, on the member's own networks), checkpoints,
logs, run folders — each member does on its own, exactly as a run of that seed alone. A seed's
numbers do not depend on which seeds share its group (to float rounding: the batched products
round differently; ``tests/test_seed_group.py``). A member whose training ends (finished, or
failed: e.g. its loss diverged) leaves the group and the others go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xwq.agents.base import MARLAgents
from xwq.common.checkpoint import atomic_save
from xwq.errors import UsageError
from xwq.learners.stacked import StackedLearner
from xwq.policies.exploration import epsilon_greedy
from xwq.policies.stacked import StackedGreedy

#: config keys the members of a group may differ in (everything else must be equal)
MAY_DIFFER = ("seed",)


class GroupAbortedError(RuntimeError):
    """Another member of the seed group failed in a batched step it took part in."""


class _Rendezvous:
    """Gathers one request per active member, runs the batched step once all are in (in the
    thread of the last to arrive), and hands each member its result."""

    def __init__(self, size: int, run: Callable[[str, dict[int, Any]], dict[int, Any]]) -> None:
        self.condition = threading.Condition()
        self.size = size
        self.active = set(range(size))
        self.requests: dict[int, tuple[str, Any]] = {}
        self.results: dict[int, Any] = {}
        self.round = 0
        self.run = run
        self.stopped: BaseException | None = None

    def call(self, member: int, kind: str, request: Any) -> Any:
        with self.condition:
            if self.stopped is not None:
                raise self.stopped
            if member not in self.active:
                raise UsageError(f"seed group member {member} has left the group")
            self.requests[member] = (kind, request)
            round_ = self.round
            if not self._run_if_complete():
                self.condition.wait_for(lambda: self.round != round_
                                        or self.stopped is not None)
            if self.stopped is not None:
                raise self.stopped
            result = self.results.pop(member)
        if isinstance(result, BaseException):
            raise result
        return result

    def admit_all(self) -> None:
        """Every member takes part again (a new :meth:`SeedGroup.run`)."""
        with self.condition:
            self.active = set(range(self.size))
            self.requests, self.results, self.stopped = {}, {}, None

    def stop(self, reason: BaseException) -> None:
        """Every member gets ``reason`` at its next (or current) meeting point."""
        with self.condition:
            self.stopped = reason
            self.condition.notify_all()

    def leave(self, member: int) -> None:
        with self.condition:
            self.active.discard(member)
            self._run_if_complete()

    def _run_if_complete(self) -> bool:
        if not self.requests or set(self.requests) < self.active:
            return False
        requests, self.requests = self.requests, {}
        kinds = {kind for kind, _ in requests.values()}
        try:
            if len(kinds) > 1:
                raise RuntimeError(f"seed group members out of step: {sorted(kinds)}")
            results = self.run(kinds.pop(), {m: request for m, (_, request)
                                             in requests.items()})
        except BaseException as error:  # every member of this step gets the failure
            results = {member: GroupAbortedError(f"a batched step of the seed group failed: "
                                                 f"{error!r}") for member in requests}
            for member in requests:
                results[member].__cause__ = error
        self.results.update(results)
        self.round += 1
        self.condition.notify_all()
        return True


class _GroupMember:
    """What a member's agents do differently: training actions and updates go through the
    group; checkpoints and saved models hold the member's own rows (copies, not views of the
    stack), with its own optimiser state."""

    _group: SeedGroup
    _member: int

    def act(self, obs: np.ndarray, avail: np.ndarray, prev_actions: torch.Tensor,
            hidden: torch.Tensor | None, test_mode: bool = False
            ) -> tuple[np.ndarray, torch.Tensor | None]:
        if test_mode:  # evaluation: this seed alone, on its own networks
            return super().act(obs, avail, prev_actions, hidden, test_mode)
        actions, hidden = self._group.rendezvous.call(
            self._member, "act", (obs, avail, prev_actions, hidden))
        actions = epsilon_greedy(actions, avail, self.epsilon(self.env_steps), self.rng)
        return actions, hidden

    def _apply_updates(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        return self._group.rendezvous.call(self._member, "learn", batches)

    def state_dict(self, include_buffer: bool = False) -> dict:
        self._group.learner.export_optimizer(self._member)
        return _copies(super().state_dict(include_buffer))

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._group.learner.load_optimizer(self._member)

    def save_model(self, path: str | Path) -> Path:
        return atomic_save({"policy": _copies(self.policy.state_dict()),
                            "config": self.config.to_dict()}, path)

    def leave_group(self) -> None:
        """Stop taking part in the group's batched steps (training is over for this seed)."""
        self._group.rendezvous.leave(self._member)


def _copies(value: Any) -> Any:
    """``value`` with every tensor cloned: a view of a stacked row would save the whole stack."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((key, _copies(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_copies(item) for item in value)
    return value


_MEMBER_CLASSES: dict[type, type] = {}


def _member_class(cls: type) -> type:
    if cls not in _MEMBER_CLASSES:
        _MEMBER_CLASSES[cls] = type(f"Grouped{cls.__name__}", (_GroupMember, cls), {})
    return _MEMBER_CLASSES[cls]


class SeedGroup:
    """S seeds' agents (one config but for the seed) trained as one batch.

    Args:
        agents: seed s's agents at position s, freshly built (or loaded); from now on their
            parameters are rows of the group's stacks, and they act and learn through the
            group. Each is then driven by its own training loop, all loops in step (one thread
            each: :func:`xwq.runners.vectorized.execute_group`).

    Raises:
        UsageError: the agents' configs differ in more than the seed, or their envs in size.
    """

    def __init__(self, agents: Sequence[MARLAgents]) -> None:
        agents = list(agents)
        if not agents:
            raise UsageError("a seed group needs at least one seed")
        first = agents[0]
        reference = {k: v for k, v in first.config.to_dict().items() if k not in MAY_DIFFER}
        for other in agents[1:]:
            values = {k: v for k, v in other.config.to_dict().items() if k not in MAY_DIFFER}
            differing = sorted(k for k in reference if values.get(k) != reference[k])
            if differing:
                raise UsageError(f"the seeds of a group must share their config but for the "
                                 f"seed; seed {other.config.seed} differs from seed "
                                 f"{first.config.seed} in {differing}")
            if other.envs.num_envs != first.envs.num_envs or other.spec != first.spec:
                raise UsageError("the seeds of a group need envs of one size (parallels and "
                                 "env spec)")
        if len({agent.config.seed for agent in agents}) != len(agents):
            raise UsageError("the seeds of a group must be distinct")
        self.agents = agents
        self.device = first.device
        self.learner = StackedLearner(first.config, [agent.learner for agent in agents])
        self.greedy = StackedGreedy(first.policy)
        self.rendezvous = _Rendezvous(len(agents), self._run)
        for member, agent in enumerate(agents):
            agent.__class__ = _member_class(type(agent))
            agent._group, agent._member = self, member

    def _run(self, kind: str, requests: dict[int, Any]) -> dict[int, Any]:
        return self._act(requests) if kind == "act" else self._learn(requests)

    def _act(self, requests: dict[int, Any]) -> dict[int, Any]:
        """Greedy actions and new hidden states of the members in ``requests`` (their ``(obs,
        avail, prev_actions, hidden)``), one forward pass."""
        members = sorted(requests)
        obs, avail, prev_actions, hidden = zip(*(requests[m] for m in members))
        device = self.device
        state = self.learner.policies.state(
            None if members == list(range(len(self.agents))) else members)
        greedy, new_hidden = self.greedy(
            state, torch.as_tensor(np.stack(obs), device=device),
            torch.stack(prev_actions).to(device),
            torch.as_tensor(np.stack(avail), device=device),
            None if hidden[0] is None else torch.stack(hidden))
        greedy = greedy.cpu().numpy()
        return {m: (greedy[i], None if new_hidden is None else new_hidden[i])
                for i, m in enumerate(members)}

    def _learn(self, requests: dict[int, list]) -> dict[int, Any]:
        """Each member's due updates (its list of batches), in rounds; per member the mean of
        each statistic over its updates, or the error its own learner would raise."""
        size = len(self.agents)
        collected: dict[int, dict[str, list[float]]] = {m: {} for m in requests}
        failed: dict[int, BaseException] = {}
        for round_ in range(max((len(batches) for batches in requests.values()), default=0)):
            batches = [requests[m][round_] if m in requests and m not in failed
                       and round_ < len(requests[m]) else None for m in range(size)]
            episodes = [agent.episodes for agent in self.agents]
            for member, result in enumerate(self.learner.update(batches, episodes)):
                if isinstance(result, BaseException):
                    failed[member] = result
                elif result is not None:
                    for key, value in result.items():
                        collected[member].setdefault(key, []).append(value)
        return {m: failed[m] if m in failed else
                {key: float(np.mean(values)) for key, values in collected[m].items()}
                for m in requests}

    def run(self, work: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``work[s]`` — member s's whole training (e.g. its experiment's ``benchmark``) —
        in one thread per member, each leaving the group when its work ends; returns their
        results in order, or raises the first member's error once all have ended. Can be
        called again (every member takes part anew)."""
        if len(work) != len(self.agents):
            raise UsageError(f"a seed group of {len(self.agents)} runs one piece of work per "
                             f"seed, got {len(work)}")
        results: list[Any] = [None] * len(work)
        errors: list[BaseException | None] = [None] * len(work)
        self.rendezvous.admit_all()  # members that left at the end of an earlier run

        def member(index: int) -> None:
            try:
                results[index] = work[index]()
            except BaseException as error:  # re-raised in the calling thread below
                errors[index] = error
            finally:
                self.agents[index].leave_group()

        threads = [threading.Thread(target=member, args=(index,), daemon=True,
                                    name=f"xwq-seed-{agent.config.seed}")
                   for index, agent in enumerate(self.agents)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException as interrupt:  # Ctrl-C, SIGTERM: every member stops at its next
            # meeting point and closes its run (logs flushed, folder unlocked) as alone
            self.rendezvous.stop(GroupAbortedError(f"the seed group was stopped: {interrupt!r}"))
            for thread in threads:
                thread.join()
            raise
        # a member's own error first (a GroupAbortedError only reports another's)
        for error in sorted((e for e in errors if e is not None),
                            key=lambda e: isinstance(e, GroupAbortedError)):
            raise error
        return results
