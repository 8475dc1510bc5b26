"""Agent bodies: the part of the agent network before the Q head.

Each body maps per-agent inputs ``[B, T, n_agents, input_dim]`` (with an optional hidden state)
to features ``[B, T, n_agents, output_dim]``. Parameters are shared across agents: the agent
index, when wanted, is part of the input (``obs_agent_id``).

Acting runs one time step for every env × agent row at once, many thousands of times a run, so
each body also has ``step(x [R, input_dim], hidden [R, H] or None) -> (features [R, out],
hidden)``: the same numbers as ``forward`` on a one-step sequence (bit for bit on the CPU,
tested), through the functional ops directly (``F.linear``, ``torch.gru_cell``) instead of
module calls and ``nn.GRU``'s sequence machinery. A body registered by a user needs only
``forward``; without ``step`` acting goes through ``forward``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from xwq.registry import REGISTRY_REPRESENTATION


def _mlp(input_dim: int, hidden_sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(input_dim, width), nn.ReLU()]
        input_dim = width
    return nn.Sequential(*layers)


def _mlp_step(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``net`` (from :func:`_mlp`) on rows ``x [R, in]`` through functional calls."""
    for layer in net:
        x = F.linear(x, layer.weight, layer.bias) if isinstance(layer, nn.Linear) \
            else torch.relu(x)
    return x


@REGISTRY_REPRESENTATION.register("Basic_MLP")
class Basic_MLP(nn.Module):
    """Feed-forward body: (Linear → ReLU) per width in ``fc_hidden_sizes``. No memory.

    ``forward(x [B, T, n, in], hidden=None) -> (features [B, T, n, fc_hidden_sizes[-1]], None)``
    """

    recurrent = False

    def __init__(self, input_dim: int, fc_hidden_sizes: list[int], **_: object) -> None:
        super().__init__()
        self.net = _mlp(input_dim, fc_hidden_sizes)
        self.output_dim = fc_hidden_sizes[-1]

    def initial_hidden(self, batch: int, device: torch.device) -> None:
        return None

    def forward(self, x: torch.Tensor, hidden: None = None) -> tuple[torch.Tensor, None]:
        return self.net(x), None

    def step(self, x: torch.Tensor, hidden: None = None) -> tuple[torch.Tensor, None]:
        """One time step of rows ``x [R, in]`` -> ``([R, out], None)`` (module docstring)."""
        return _mlp_step(self.net, x), None


@REGISTRY_REPRESENTATION.register("Basic_RNN")
class Basic_RNN(nn.Module):
    """Recurrent body: (Linear → ReLU) per width in ``fc_hidden_sizes``, then a GRU.

    ``forward(x [B, T, n, in], hidden [B*n, H] or None) -> (features [B, T, n, H],
    last hidden [B*n, H])``. The whole sequence goes through one ``nn.GRU`` call (faster than a
    GRUCell loop, same numbers); ``hidden=None`` starts from zeros.
    """

    recurrent = True

    def __init__(self, input_dim: int, fc_hidden_sizes: list[int], recurrent_hidden_size: int,
                 **_: object) -> None:
        super().__init__()
        self.net = _mlp(input_dim, fc_hidden_sizes)
        self.gru = nn.GRU(fc_hidden_sizes[-1], recurrent_hidden_size, batch_first=True)
        self.output_dim = recurrent_hidden_size

    def initial_hidden(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(batch, self.output_dim, device=device)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, n_agents, _ = x.shape
        features = self.net(x).transpose(1, 2).reshape(batch * n_agents, steps, -1)
        h0 = None if hidden is None else hidden.unsqueeze(0).contiguous()
        out, h_last = self.gru(features, h0)
        out = out.reshape(batch, n_agents, steps, -1).transpose(1, 2)
        return out, h_last.squeeze(0)

    def step(self, x: torch.Tensor, hidden: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step of rows ``x [R, in]`` and ``hidden [R, H]`` (None: zeros) -> the new
        hidden state ``[R, H]``, which is also the features (module docstring)."""
        features = _mlp_step(self.net, x)
        if hidden is None:
            hidden = features.new_zeros(features.shape[0], self.output_dim)
        gru = self.gru
        hidden = torch.gru_cell(features, hidden, gru.weight_ih_l0, gru.weight_hh_l0,
                                gru.bias_ih_l0, gru.bias_hh_l0)
        return hidden, hidden
