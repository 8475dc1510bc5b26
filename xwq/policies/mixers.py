"""Mixers: combine per-agent Q values into a joint Q_tot, conditioned on the state.

Every mixer is a :class:`Mixer`: ``agent_qs [*B, n_agents]`` and ``state [*B, state_dim]`` ->
``q_tot [*B]``, where ``*B`` is any number of leading dimensions (batch, time). The state first
goes through the mixer's own :class:`~xwq.policies.normalization.InputNormalizer` (identity
unless the policy gives it the env's scaling), so a target copy of a mixer scales as it does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from xwq.policies.normalization import InputNormalizer


class Mixer(nn.Module, ABC):
    """Base of every mixer: checks the shapes once, then calls :meth:`mix`.

    Shape contract: ``agent_qs [*B, n_agents]``, ``state [*B, state_dim]`` -> ``q_tot [*B]``;
    both inputs share the leading dimensions ``*B`` (any number of them, e.g. batch and time).
    A malformed input raises ``ValueError`` saying which shapes were expected. A subclass
    implements :meth:`mix` on inputs that already passed the check and the state scaling
    (``state_normalizer``, identity by default: :mod:`xwq.policies.normalization`).

    >>> mixer = QMixer(n_agents=3, state_dim=10)
    >>> mixer(torch.zeros(32, 25, 3), torch.zeros(32, 25, 10)).shape
    torch.Size([32, 25])
    >>> mixer(torch.zeros(32, 2), torch.zeros(32, 10))
    Traceback (most recent call last):
    ...
    ValueError: QMixer expects agent_qs [*B, 3] and state [*B, 10], got (32, 2) and (32, 10)
    """

    def __init__(self, n_agents: int, state_dim: int,
                 state_normalizer: InputNormalizer | None = None) -> None:
        super().__init__()
        self.n_agents, self.state_dim = n_agents, state_dim
        self.state_normalizer = state_normalizer or InputNormalizer()

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if agent_qs.shape[-1:] != (self.n_agents,) or state.shape[-1:] != (self.state_dim,):
            raise ValueError(
                f"{type(self).__name__} expects agent_qs [*B, {self.n_agents}] and state "
                f"[*B, {self.state_dim}], got {tuple(agent_qs.shape)} and {tuple(state.shape)}")
        if agent_qs.shape[:-1] != state.shape[:-1]:
            raise ValueError(f"agent_qs {tuple(agent_qs.shape)} and state {tuple(state.shape)} "
                             "disagree on the leading (batch, time) dimensions")
        return self.mix(agent_qs, self.state_normalizer(state))

    @abstractmethod
    def mix(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``agent_qs [*B, n_agents]``, ``state [*B, state_dim]`` (already checked) ->
        ``q_tot [*B]``."""


class VDNMixer(Mixer):
    """Q_tot = Σ_i Q_i (Sunehag et al., 2018). No parameters; the state is ignored."""

    def __init__(self, n_agents: int, state_dim: int,
                 state_normalizer: InputNormalizer | None = None, **_: object) -> None:
        super().__init__(n_agents, state_dim, state_normalizer)

    def mix(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return agent_qs.sum(dim=-1)


class QMixer(Mixer):
    """The monotonic QMIX mixer (Rashid et al., 2018).

    Hypernetworks of the state give non-negative weights, so ∂Q_tot/∂Q_i ≥ 0:
    ``h = ELU(q · |W1(s)| + b1(s))``, ``Q_tot = h · |W2(s)| + V(s)`` with W1 ``[n, embed]``,
    W2 ``[embed, 1]``, ``V(s) = Linear → ReLU → Linear``.
    """

    def __init__(self, n_agents: int, state_dim: int, hidden_dim_mixing_net: int = 32,
                 hidden_dim_hyper_net: int = 64, hypernet_layers: int = 2,
                 state_normalizer: InputNormalizer | None = None, **_: object) -> None:
        super().__init__(n_agents, state_dim, state_normalizer)
        self.embed_dim = embed = hidden_dim_mixing_net

        def hyper(out_dim: int) -> nn.Module:
            if hypernet_layers == 1:
                return nn.Linear(state_dim, out_dim)
            return nn.Sequential(nn.Linear(state_dim, hidden_dim_hyper_net), nn.ReLU(),
                                 nn.Linear(hidden_dim_hyper_net, out_dim))

        self.hyper_w1 = hyper(n_agents * embed)
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = hyper(embed)
        self.value = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def mix(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        lead = agent_qs.shape[:-1]
        qs = agent_qs.reshape(-1, self.n_agents, 1)
        s = state.reshape(-1, self.state_dim)
        w1 = self.hyper_w1(s).abs().view(-1, self.n_agents, self.embed_dim)
        # q·W1 as a broadcast product and sum: on a CPU, bmm of many tiny matrices is 2x slower
        hidden = nn.functional.elu((qs * w1).sum(dim=1) + self.hyper_b1(s))
        w2 = self.hyper_w2(s).abs()
        q_tot = (hidden * w2).sum(dim=-1) + self.value(s).squeeze(-1)
        return q_tot.view(lead)


class FeedForwardMixer(Mixer):
    """The unrestricted mixer of Q̂* in Weighted QMIX: not monotonic in the agents' Qs.

    ``Q̂*(s, u) = MLP([q_1 … q_n, s]) + V(s)`` with three ReLU layers of width
    ``hidden_dim_ff_mix_net`` (256 in the paper) and ``V(s) = Linear → ReLU → Linear``.
    """

    def __init__(self, n_agents: int, state_dim: int, hidden_dim_ff_mix_net: int = 256,
                 state_normalizer: InputNormalizer | None = None, **_: object) -> None:
        super().__init__(n_agents, state_dim, state_normalizer)
        width = hidden_dim_ff_mix_net
        self.net = nn.Sequential(
            nn.Linear(n_agents + state_dim, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 1))
        self.value = nn.Sequential(nn.Linear(state_dim, width), nn.ReLU(), nn.Linear(width, 1))

    def mix(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([agent_qs, state], dim=-1)
        return (self.net(joint) + self.value(state)).squeeze(-1)


MIXERS = {"VDN": VDNMixer, "QMIX": QMixer}
