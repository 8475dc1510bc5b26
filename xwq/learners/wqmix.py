"""Weighted QMIX (Rashid, Farquhar, Peng, Whiteson, NeurIPS 2020): the QMIX learner plus Q̂*.

Read beside the paper (Algorithm 1, §4–5) and the authors' ``max_q_learner.py``:

1. ũ' = per-agent argmax of the **online** QMIX agent Qs at t+1 (unavailable actions masked);
   inherited from :class:`QMIXLearner`.
2. y = r + γ (1 − terminated) · Q̂*_target(s', ũ')          — :meth:`compute_targets`
3. QMIX loss = Σ w·mask·(Q_tot(s,u) − y)² / Σ mask, w detached — :meth:`compute_loss`
4. Q̂* loss  = Σ mask·(Q̂*(s,u) − y)² / Σ mask, on the taken actions u, unweighted
5. loss = QMIX loss + Q̂* loss, one optimiser; targets (Q̂*'s agent and mixer) copied every
   ``sync_frequency`` episodes (or updates, ``sync_unit``); inherited.
6. weights (α = ``alpha``) from the function the config key ``weighting`` names in
   :data:`xwq.REGISTRY_WEIGHTING` (:mod:`xwq.learners.weightings`): OW w = 1 if Q_tot − y < 0
   else α; CW w = 1 if u is the QMIX-greedy joint action at s for every agent, or
   y > Q̂*_target(s, û) with û that greedy action; else α.

QMIX's own target networks are not used by WQMIX (its target comes from Q̂*), so none are kept.
``double_q`` does not apply: ũ' always comes from the online QMIX agent, as in the paper.
"""

from __future__ import annotations

from typing import Any

import torch

from xwq.errors import UsageError
from xwq.learners.qmix import QMIXLearner, gather_actions, masked_mean
from xwq.learners.weightings import WeightingContext
from xwq.registry import REGISTRY_LEARNER, REGISTRY_WEIGHTING, require_choice


@REGISTRY_LEARNER.register("WQMIX_Learner")
class WQMIXLearner(QMIXLearner):
    """Weighted QMIX for a :class:`WeightedMixingQNetwork`: CW-QMIX or OW-QMIX (``weighting:
    cw|ow``), or any weighting registered in :data:`xwq.REGISTRY_WEIGHTING`."""

    target_modules = ("star_agent", "star_mixer")

    def __init__(self, config: Any, policy: Any) -> None:
        if policy.mixer is None or not hasattr(policy, "star_agent"):
            raise ValueError("WQMIX_Learner needs policy: Weighted_Mixing_Q_network with a "
                             "mixer (QMIX); check the 'policy' and 'mixer' config keys")
        super().__init__(config, policy)
        self.alpha = config.alpha
        require_choice("weighting", config.weighting, list(REGISTRY_WEIGHTING),
                       where=" (config key 'weighting')",
                       hint="Register your own with @xwq.REGISTRY_WEIGHTING.register(name).")
        self.weighting = REGISTRY_WEIGHTING[config.weighting]

    def compute_targets(self, batch: dict[str, torch.Tensor], inputs: torch.Tensor,
                        greedy: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """y = r + γ (1 − terminated) · Q̂*_target(s', ũ').

        Q̂*_target is evaluated once at the QMIX-greedy joint action of *every* step: its values
        at t+1 make the target, those at t are what CW weighting compares y with.
        """
        target_star_q, _ = self.targets["star_agent"](inputs)
        q_star_at_greedy = self.targets["star_mixer"](gather_actions(target_star_q, greedy),
                                                      batch["state"])  # [B, T+1]
        aux = {"greedy": greedy[:, :-1], "q_star_at_greedy": q_star_at_greedy[:, :-1]}
        return self._bellman(batch, q_star_at_greedy[:, 1:]), aux

    def weights(self, context: WeightingContext) -> torch.Tensor:
        """The configured weighting's ``[B, T]`` weights (checked: it may be a user's)."""
        weights = self.weighting(context)
        expected = context.td_error.shape
        if not isinstance(weights, torch.Tensor) or weights.shape != expected:
            got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights)
            raise UsageError(
                f"weighting '{self.config.weighting}' returned {got}; a weighting must return "
                f"a tensor with one weight per step, [B, T] = {tuple(expected)}")
        return weights.to(context.td_error.dtype)

    def compute_loss(self, batch: dict[str, torch.Tensor], inputs: torch.Tensor,
                     q_all: torch.Tensor, q_tot: torch.Tensor, targets: torch.Tensor,
                     aux: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        policy, mask = self.policy, batch["filled"]
        star_q, _ = policy.star_agent(inputs[:, :-1])  # only Q̂*(s_t, u_t), t < T, is trained
        q_star = policy.star_mixer(gather_actions(star_q, batch["actions"]),
                                   batch["state"][:, :-1])
        td_error = q_tot - targets
        with torch.no_grad():
            weights = self.weights(WeightingContext(
                td_error=td_error.detach(), targets=targets, actions=batch["actions"],
                greedy_actions=aux["greedy"], q_star_at_greedy=aux["q_star_at_greedy"],
                alpha=self.alpha, mask=mask))
        qmix_loss = masked_mean(weights * td_error.pow(2), mask)
        star_loss = masked_mean((q_star - targets).pow(2), mask)
        loss = qmix_loss + star_loss
        return loss, {"loss": loss.detach(), "qmix_loss": qmix_loss.detach(),
                      "q_star_loss": star_loss.detach(),
                      "td_error_abs": masked_mean(td_error.detach().abs(), mask),
                      "q_star": masked_mean(q_star.detach(), mask),
                      "weights_mean": masked_mean(weights, mask)}
