"""Several seeds' networks run as one: parameters stacked along a leading seed dimension.

S seeds of one configuration have networks of one architecture. :class:`StackedModules` holds
their parameters (and buffers) as tensors ``[S, ...]`` and makes every seed's own module keep
*views* of its row, so what a seed's module reads (acting at evaluation, saving, checkpoints) and
writes (loading a checkpoint, copying targets) is its slice of the stack; nothing is copied.

The stacked forward pass is ``torch.func.vmap`` over ``torch.func.functional_call`` of one
*template* module (:func:`vmappable`: a copy of a seed's module in which every ``nn.GRU`` is a
:class:`MatmulGRU` with the same parameters, since ``nn.GRU`` has no batching rule): every matrix
multiply becomes one batched product over the seeds, every elementwise call one call for all
seeds. Each seed's slice is computed as the seed's own module would compute it, to float
rounding (``tests/test_seed_group.py``).

    >>> from torch import nn
    >>> seeds = [nn.Linear(4, 2) for _ in range(3)]
    >>> stack = StackedModules(seeds)
    >>> stack.params["weight"].shape
    torch.Size([3, 2, 4])
    >>> with torch.no_grad():
    ...     stack.params["weight"][1] += 1.0  # seed 1's own module sees it
    >>> bool((seeds[1].weight == stack.params["weight"][1]).all())
    True
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class MatmulGRU(nn.Module):
    """A one-layer, batch-first GRU with ``nn.GRU``'s parameters and equations, written with
    matrix multiplies that ``torch.func.vmap`` batches over seeds.

    ``forward(x [N, T, in], h0 [1, N, H] or None) -> (out [N, T, H], h_last [1, N, H])``. The
    input projection of all T steps is one product; the recurrent part is a T-step loop.
    """

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        if gru.num_layers != 1 or gru.bidirectional or not gru.batch_first or not gru.bias:
            raise ValueError("MatmulGRU stands in for a one-layer, unidirectional, batch-first "
                             "nn.GRU with biases")
        self.hidden_size = gru.hidden_size
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            setattr(self, name, nn.Parameter(getattr(gru, name).detach().clone()))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        H = self.hidden_size
        # the input projection of every step at once; unbind and split (not indexing) so that
        # backward assembles each gradient once instead of adding into a zero tensor per step
        inputs = F.linear(x, self.weight_ih_l0, self.bias_ih_l0).unbind(1)  # T × [N, 3H]
        h = x.new_zeros(x.shape[0], H) if h0 is None else h0[0]
        outputs = []
        for x_t in inputs:
            x_rz, x_n = x_t.split([2 * H, H], dim=-1)
            h_rz, h_n = F.linear(h, self.weight_hh_l0, self.bias_hh_l0).split([2 * H, H], dim=-1)
            reset, update = torch.sigmoid(x_rz + h_rz).chunk(2, dim=-1)
            new = torch.tanh(x_n + reset * h_n)
            h = new + update * (h - new)  # (1 - z) n + z h
            outputs.append(h)
        return torch.stack(outputs, dim=1), h.unsqueeze(0)


class FlatLinear(nn.Linear):
    """``nn.Linear`` on the input flattened to 2-D: under ``vmap`` with stacked weights a
    linear layer on ``[B, T, n, in]`` would batch its gradient over every leading row (one tiny
    product per row); flattened it is one product per seed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x.reshape(-1, x.shape[-1]), self.weight, self.bias)
        return out.view(*x.shape[:-1], out.shape[-1])


def _flat_linear(linear: nn.Linear) -> FlatLinear:
    flat = FlatLinear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                      device="meta")
    flat.weight = nn.Parameter(linear.weight.detach().clone())
    if linear.bias is not None:
        flat.bias = nn.Parameter(linear.bias.detach().clone())
    return flat


def vmappable(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose layers batch well under ``vmap``, with the same parameters
    under the same names: every ``nn.GRU`` a :class:`MatmulGRU`, every ``nn.Linear`` a
    :class:`FlatLinear`. The template a stacked forward pass calls."""
    template = copy.deepcopy(module)
    for name, child in list(template.named_modules()):
        if type(child) in (nn.GRU, nn.Linear):
            parent_name, _, attribute = name.rpartition(".")
            parent = template.get_submodule(parent_name) if parent_name else template
            replacement = MatmulGRU(child) if isinstance(child, nn.GRU) else _flat_linear(child)
            setattr(parent, attribute, replacement)
    return template


class StackedModules:
    """The parameters and buffers of S modules of one architecture, stacked ``[S, ...]``.

    Args:
        modules: one module per seed; each keeps its parameters and buffers, now views of its
            row of the stack (so in-place changes to the stack are the modules' changes, and
            ``module.load_state_dict`` writes into the stack).
        requires_grad: whether the stacked parameters are trained (False for target networks).

    Attributes:
        params: name -> ``[S, ...]`` leaf tensor (``named_parameters`` order);
        buffers: name -> ``[S, ...]``.
    """

    def __init__(self, modules: Sequence[nn.Module], requires_grad: bool = True) -> None:
        first = modules[0]
        names = [name for name, _ in first.named_parameters()]
        buffer_names = [name for name, _ in first.named_buffers()]
        for module in modules[1:]:
            if [name for name, _ in module.named_parameters()] != names:
                raise ValueError("StackedModules needs modules of one architecture")
        self.size = len(modules)
        with torch.no_grad():
            self.params = {name: torch.stack([module.get_parameter(name).detach()
                                              for module in modules]).requires_grad_(requires_grad)
                           for name in names}
            self.buffers = {name: torch.stack([module.get_buffer(name) for module in modules])
                            for name in buffer_names}
        for seed, module in enumerate(modules):
            for name in names:
                module.get_parameter(name).data = self.params[name].data[seed]
            for name in buffer_names:
                module.get_buffer(name).data = self.buffers[name][seed]

    def state(self, seeds: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Parameters and buffers by name, ``[S, ...]`` (or the rows of ``seeds``), for
        ``functional_call``; gradients flow back into the stack."""
        tensors = {**self.params, **self.buffers}
        if seeds is None:
            return tensors
        index = torch.as_tensor(list(seeds), device=next(iter(tensors.values())).device)
        return {name: tensor.index_select(0, index) for name, tensor in tensors.items()}


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``state`` with ``prefix.`` before every name (a submodule's names in its parent)."""
    return {f"{prefix}.{name}": tensor for name, tensor in state.items()}


class _Greedy(nn.Module):
    """Calls ``policy.greedy`` as a forward pass, so ``functional_call`` can swap its
    parameters."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs, prev_actions, avail, hidden):
        return self.policy.greedy(obs, prev_actions, avail, hidden)


class StackedGreedy:
    """One acting step for S seeds × K envs × n agents in one forward pass.

    ``__call__(state, obs [S, K, n, o], prev_actions [S, K, n], avail [S, K, n, A],
    hidden [S, K*n, H] or None) -> (greedy actions [S, K, n], hidden)``, where ``state`` is the
    policy's :meth:`StackedModules.state`. Seed s's rows are what its own
    ``policy.greedy`` gives on its rows.
    """

    def __init__(self, policy: nn.Module) -> None:
        self.module = _Greedy(vmappable(policy))

    @torch.no_grad()
    def __call__(self, state: dict[str, torch.Tensor], obs: torch.Tensor,
                 prev_actions: torch.Tensor, avail: torch.Tensor,
                 hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        module = self.module

        def one_seed(seed_state, obs, prev_actions, avail, hidden):
            return torch.func.functional_call(module, seed_state,
                                              (obs, prev_actions, avail, hidden))

        hidden_dim = None if hidden is None else 0  # None: a body without memory
        return torch.func.vmap(one_seed, in_dims=(0, 0, 0, 0, hidden_dim),
                               out_dims=(0, hidden_dim))(
            prefixed(state, "policy"), obs, prev_actions, avail, hidden)
