"""Weighting functions of Weighted QMIX: how much each step's QMIX loss counts.

A weighting is any function ``weighting(context: WeightingContext) -> weights [B, T]``
registered in :data:`xwq.REGISTRY_WEIGHTING`; the config key ``weighting`` names the one a
WQMIX learner uses. The learner calls it without gradients and multiplies each step's squared
QMIX TD error by its weight; weights at padded steps are ignored (the loss masks them). Built in,
with α = ``alpha`` (Rashid et al., 2020, §5):

- ``ow`` (optimistic): w = 1 where Q_tot underestimates the target (td < 0), else α;
- ``cw`` (centrally weighted): w = 1 where the taken joint action is the QMIX-greedy one for
  every agent, or the target beats Q̂* at that greedy action (y > Q̂*_target(s, û)); else α.

Your own, selected with ``weighting: half``:

>>> import torch, xwq
>>> @xwq.REGISTRY_WEIGHTING.register("half")
... def half(context: WeightingContext) -> torch.Tensor:
...     return torch.full_like(context.td_error, 0.5)
>>> del xwq.REGISTRY_WEIGHTING["half"]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from xwq.registry import REGISTRY_WEIGHTING


@dataclass(frozen=True)
class WeightingContext:
    """What a weighting function may read: detached tensors of one batch (B episodes, T steps,
    n agents), step t of episode b at ``[b, t]``.

    Attributes:
        td_error: Q_tot(s_t, u_t) − y_t, ``[B, T]``.
        targets: y_t = r_t + γ (1 − terminated_t) Q̂*_target(s_{t+1}, ũ_{t+1}), ``[B, T]``.
        actions: the taken actions u_t, ``[B, T, n]`` int64.
        greedy_actions: û_t, each agent's greedy available action under the online QMIX agent
            network, ``[B, T, n]`` int64.
        q_star_at_greedy: Q̂*_target(s_t, û_t), ``[B, T]``.
        alpha: the config key ``alpha``, in (0, 1].
        mask: true at real steps, false at padding, ``[B, T]`` bool.
    """

    td_error: torch.Tensor
    targets: torch.Tensor
    actions: torch.Tensor
    greedy_actions: torch.Tensor
    q_star_at_greedy: torch.Tensor
    alpha: float
    mask: torch.Tensor


@REGISTRY_WEIGHTING.register("ow")
def ow_weights(context: WeightingContext) -> torch.Tensor:
    """Optimistic weighting: 1 where Q_tot underestimates the target (td < 0), else α."""
    td_error = context.td_error
    return torch.where(td_error < 0, torch.ones_like(td_error),
                       torch.full_like(td_error, context.alpha))


@REGISTRY_WEIGHTING.register("cw")
def cw_weights(context: WeightingContext) -> torch.Tensor:
    """Central weighting: 1 where the taken joint action is the QMIX-greedy one (all agents)
    or the target beats Q̂* at that greedy action, else α."""
    targets = context.targets
    is_greedy = (context.actions == context.greedy_actions).all(dim=-1)
    full = is_greedy | (targets > context.q_star_at_greedy)
    return torch.where(full, torch.ones_like(targets), torch.full_like(targets, context.alpha))
