"""The QMIX-family TD learner: serves IQL (no mixer), VDN and QMIX.

One update on a batch of whole episodes, hidden states from zero (Rashid et al., 2018):

1. unroll the agent network over t = 0..T, take Q_i(τ_t, u_t) and mix: Q_tot(s_t, u_t);
2. next actions ũ' = argmax of the *online* agent Qs at t+1 over available actions (double Q),
   evaluated by the *target* networks: y = r + γ (1 − terminated) Q_tot^target(s_{t+1}, ũ');
3. loss = Σ mask·(Q_tot − y)² / Σ mask — steps 1–3 are :meth:`QMIXLearner.loss`;
4. RMSprop step with the gradient norm clipped, after checking that the loss and the gradient
   norm are finite;
5. target networks hard-copied every ``sync_frequency`` episodes collected (``sync_unit:
   episodes``, the authors' schedule) or updates (``sync_unit: updates``).
   Steps 4–5 are :meth:`QMIXLearner.update`.

Subclasses change the target (:meth:`compute_targets`) and the loss (:meth:`compute_loss`);
the unroll, masking, optimiser, clipping and target copies stay here.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from xwq.policies.exploration import masked_argmax
from xwq.policies.q_networks import MixingQNetwork
from xwq.registry import REGISTRY_LEARNER


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; training stops rather than corrupting the networks."""


def gather_actions(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``q [B, T, n, A]``, ``actions [B, T, n]`` -> Q at those actions ``[B, T, n]``."""
    return q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ mask·values / Σ mask, broadcasting ``mask [B, T]`` over trailing agent dims."""
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def make_optimizer(config: Any, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    # foreach: one multi-tensor kernel per step instead of a loop over the parameters. PyTorch
    # picks it by itself only on CUDA; on a CPU it is ~1.6x faster and gives the same numbers.
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate, foreach=True)
    return torch.optim.RMSprop(params, lr=config.learning_rate, alpha=config.rmsprop_alpha,
                               eps=config.rmsprop_eps, foreach=True)


@REGISTRY_LEARNER.register("QMIX_Learner")
class QMIXLearner:
    """TD learner for a :class:`MixingQNetwork` (IQL, VDN or QMIX by its mixer)."""

    #: online module names whose hard-copied targets this learner keeps
    target_modules: tuple[str, ...] = ("agent", "mixer")

    def __init__(self, config: Any, policy: MixingQNetwork) -> None:
        self.config = config
        self.policy = policy
        self.gamma = config.gamma
        self.params = [p for p in policy.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(config, self.params)
        self.targets = nn.ModuleDict({
            name: copy.deepcopy(getattr(policy, name))
            for name in self.target_modules if getattr(policy, name) is not None})
        self.targets.requires_grad_(False)
        self.updates = 0
        #: ``count // sync_frequency`` at the last target copy (count: episodes or updates)
        self.synced_period = 0

    def sync_targets(self) -> None:
        for name, target in self.targets.items():
            target.load_state_dict(getattr(self.policy, name).state_dict())

    # --- the pieces subclasses change ----------------------------------------------------
    def compute_targets(self, batch: dict[str, torch.Tensor], inputs: torch.Tensor,
                        greedy: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """y = r + γ (1 − terminated) · Q_tot^target(s', ũ'); ``[B, T]`` (``[B, T, n]`` for IQL).

        ``greedy [B, T+1, n]``: the online agents' greedy available actions at every step;
        ũ' = ``greedy[:, 1:]``.
        """
        target_q, _ = self.targets["agent"](inputs)
        if self.config.double_q:
            next_q = gather_actions(target_q[:, 1:], greedy[:, 1:])
        else:
            next_q = gather_actions(target_q[:, 1:],
                                    masked_argmax(target_q[:, 1:], batch["avail"][:, 1:]))
        mixer = self.targets["mixer"] if "mixer" in self.targets else None
        next_q_tot = next_q if mixer is None else mixer(next_q, batch["state"][:, 1:])
        return self._bellman(batch, next_q_tot), {}

    def compute_loss(self, batch: dict[str, torch.Tensor], inputs: torch.Tensor,
                     q_all: torch.Tensor, q_tot: torch.Tensor, targets: torch.Tensor,
                     aux: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to minimise and detached 0-dim statistics (read once, in :meth:`update`)."""
        td_error = q_tot - targets
        loss = masked_mean(td_error.pow(2), batch["filled"])
        return loss, {"loss": loss.detach(),
                      "td_error_abs": masked_mean(td_error.detach().abs(), batch["filled"])}

    # --- shared machinery ----------------------------------------------------------------
    def _bellman(self, batch: dict[str, torch.Tensor], next_value: torch.Tensor) -> torch.Tensor:
        reward, not_done = batch["reward"], 1.0 - batch["terminated"].float()
        if next_value.dim() == 3:  # IQL: one target per agent from the team reward
            reward, not_done = reward.unsqueeze(-1), not_done.unsqueeze(-1)
        return reward + self.gamma * not_done * next_value

    def loss(self, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Steps 1–3 on a batch of episodes: the loss to minimise and detached 0-dim statistics.

        ``batch``: obs ``[B, T+1, n, o]``, state ``[B, T+1, S]``, avail ``[B, T+1, n, A]``,
        actions ``[B, T, n]`` int64, reward/terminated/filled ``[B, T]``.
        """
        policy = self.policy
        actions = batch["actions"]
        no_action = torch.full_like(actions[:, :1], -1)
        inputs = policy.build_inputs(batch["obs"], torch.cat([no_action, actions], dim=1))
        q_all, _ = policy.agent(inputs)
        q_tot = policy.mix(gather_actions(q_all[:, :-1], actions), batch["state"][:, :-1])
        with torch.no_grad():
            greedy = masked_argmax(q_all, batch["avail"])  # ũ at every step, [B, T+1, n]
            targets, aux = self.compute_targets(batch, inputs, greedy)
        loss, stats = self.compute_loss(batch, inputs, q_all, q_tot, targets, aux)
        stats["q_tot"] = masked_mean(q_tot.detach(), batch["filled"])
        stats["target"] = masked_mean(targets, batch["filled"])
        return loss, stats

    def update(self, batch: dict[str, torch.Tensor], episodes: int | None = None
               ) -> dict[str, float]:
        """One gradient step: :meth:`loss`, backward, the gradient norm clipped, the optimiser
        step, then the target copy when it is due (:meth:`maybe_sync`).

        Args:
            batch: as :meth:`loss` takes it.
            episodes: episodes collected so far, what ``sync_unit: episodes`` counts. A learner
                driven without it (a benchmark, a test) counts one episode per update.

        Raises:
            NonFiniteLossError: the loss or the gradient norm is NaN or infinite; the
                networks and the optimiser are left as they were.
        """
        loss, tensors = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # the norm is checked even when not clipping: max_norm=inf leaves the gradients as they are
        max_norm = self.config.grad_clip_norm if self.config.use_grad_clip else math.inf
        tensors["grad_norm"] = nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)
        # one device-to-host copy for every statistic (a sync per .item() is slow on a GPU)
        stats = dict(zip(tensors, torch.stack(list(tensors.values())).tolist()))
        self._check_finite(stats)
        self.optimizer.step()
        self.updates += 1
        self.maybe_sync(episodes)
        return stats

    def _check_finite(self, stats: dict[str, float]) -> None:
        update = self.updates + 1
        if not math.isfinite(stats["loss"]):
            raise NonFiniteLossError(
                f"non-finite loss {stats['loss']} at update {update}; lower learning_rate or "
                "check the env's rewards")
        if not math.isfinite(stats["grad_norm"]):
            raise NonFiniteLossError(
                f"non-finite gradient norm {stats['grad_norm']} at update {update} (the loss, "
                f"{stats['loss']:.6g}, was finite); lower learning_rate, or check the env's "
                "observations, state and rewards for huge values")

    def maybe_sync(self, episodes: int | None = None) -> bool:
        """Copy the online networks into the targets when ``count // sync_frequency`` has grown
        since the last copy; ``count`` is ``episodes`` (``sync_unit: episodes``) or this
        learner's number of updates (``sync_unit: updates``, or ``episodes`` not given).
        Returns whether it copied."""
        by_updates = self.config.sync_unit == "updates" or episodes is None
        count = self.updates if by_updates else episodes
        period = count // self.config.sync_frequency
        if period <= self.synced_period:
            return False
        self.sync_targets()
        self.synced_period = period
        return True

    def state_dict(self) -> dict:
        return {"targets": self.targets.state_dict(), "optimizer": self.optimizer.state_dict(),
                "updates": self.updates, "synced_period": self.synced_period}

    def load_state_dict(self, state: dict) -> None:
        self.targets.load_state_dict(state["targets"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # checkpoints older than foreach=True
            group["foreach"] = True
        self.updates = state["updates"]
        # checkpoints from before sync_unit counted updates
        self.synced_period = state.get("synced_period",
                                       self.updates // self.config.sync_frequency)
