"""S seeds' TD updates as one: the learner of a seed group.

Each seed keeps its own :class:`~xwq.learners.qmix.QMIXLearner` (or WQMIX learner): its policy,
target networks, counters and optimiser state are its own. :class:`StackedLearner` runs their
updates together:

1. the seeds' parameters (and their targets') are stacked ``[S, ...]``
   (:class:`~xwq.policies.stacked.StackedModules`), each seed's modules keeping views of its row;
2. the loss of every seed is the seed learner's own :meth:`QMIXLearner.loss`, run for all seeds
   at once by ``torch.func.vmap`` over a template learner (:func:`~xwq.policies.stacked.vmappable`
   networks); the total is the sum of the seeds' losses, so each seed's gradient is the gradient
   of its own loss and lands in its own row;
3. the gradient norm is computed and clipped per seed (each seed's norm over its rows);
4. one optimiser step for all seeds (:class:`StackedOptimizer`: RMSprop and Adam are
   elementwise, so a step over the stack is S independent steps — each seed with its own step
   count);
5. each seed's target copy when *its* schedule says so (:meth:`QMIXLearner.maybe_sync`).

Seeds due for fewer updates at a step take part in fewer rounds: a round updates exactly the
seeds given a batch in it. A seed whose loss or gradient norm is not finite is left out of the
step and gets the :class:`NonFiniteLossError` its own learner would raise; the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from xwq.learners.qmix import NonFiniteLossError, QMIXLearner
from xwq.policies.stacked import StackedModules, prefixed, vmappable
from xwq.registry import REGISTRY_LEARNER


class StackedOptimizer:
    """RMSprop or Adam (config ``optimizer``, same constants as
    :func:`~xwq.learners.qmix.make_optimizer`) over stacked parameters ``[S, ...]``, each seed
    with its own step count; :meth:`step` updates the rows of the seeds given.

    :meth:`seed_state` and :meth:`load_seed_state` convert one seed's rows to and from the state
    of a ``torch.optim`` optimizer over that seed's own parameters (what its checkpoints hold).
    """

    def __init__(self, config: Any, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        self.kind = config.optimizer
        self.lr = config.learning_rate
        if self.kind == "adam":
            self.names = ("exp_avg", "exp_avg_sq")
            self.betas = (0.9, 0.999)
            self.eps = 1e-8
        else:
            self.names = ("square_avg",)
            self.alpha, self.eps = config.rmsprop_alpha, config.rmsprop_eps
        self.state = {name: [torch.zeros_like(p, memory_format=torch.preserve_format)
                             for p in self.params] for name in self.names}
        self.steps = [0] * params[0].shape[0]

    @torch.no_grad()
    def step(self, seeds: Sequence[int]) -> None:
        """One step of the seeds ``seeds`` (rows), from the parameters' ``.grad``."""
        size = len(self.steps)
        every = list(seeds) == list(range(size))
        index = None if every else torch.as_tensor(list(seeds), device=self.params[0].device)

        def rows(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            return tensors if every else [t.index_select(0, index) for t in tensors]

        params, grads = rows(self.params), rows([p.grad for p in self.params])
        state = {name: rows(values) for name, values in self.state.items()}
        for seed in seeds:
            self.steps[seed] += 1
        if self.kind == "adam":
            self._adam(params, grads, state, [self.steps[seed] for seed in seeds])
        else:
            square_avg = state["square_avg"]
            torch._foreach_mul_(square_avg, self.alpha)
            torch._foreach_addcmul_(square_avg, grads, grads, value=1 - self.alpha)
            average = torch._foreach_sqrt(square_avg)
            torch._foreach_add_(average, self.eps)
            torch._foreach_addcdiv_(params, grads, average, value=-self.lr)
        if not every:
            for stacked, updated in zip(self.params, params):
                stacked.index_copy_(0, index, updated)
            for name, values in self.state.items():
                for stacked, updated in zip(values, state[name]):
                    stacked.index_copy_(0, index, updated)

    def _adam(self, params, grads, state, steps: list[int]) -> None:
        beta1, beta2 = self.betas
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
        device = params[0].device
        step_size = torch.tensor([-self.lr / (1 - beta1 ** n) for n in steps], device=device)
        correction = torch.tensor([(1 - beta2 ** n) ** 0.5 for n in steps], device=device)
        for param, average, square in zip(params, exp_avg, exp_avg_sq):
            shape = (-1,) + (1,) * (param.dim() - 1)
            denominator = (square.sqrt() / correction.view(shape)).add_(self.eps)
            param.addcdiv_(average * step_size.view(shape), denominator)

    def seed_state(self, seed: int) -> dict[int, dict[str, torch.Tensor]]:
        """Seed ``seed``'s rows as a ``torch.optim`` state: ``{param index: {"step", ...}}``
        (empty before its first step, as torch's)."""
        if self.steps[seed] == 0:
            return {}
        return {i: {"step": torch.tensor(float(self.steps[seed])),
                    **{name: values[i][seed].detach().clone()
                       for name, values in self.state.items()}}
                for i in range(len(self.params))}

    @torch.no_grad()
    def load_seed_state(self, seed: int, state: dict[int, dict[str, torch.Tensor]]) -> None:
        """Seed ``seed``'s rows from a ``torch.optim`` state (:meth:`seed_state`'s format)."""
        if not state:
            self.steps[seed] = 0
            for values in self.state.values():
                for value in values:
                    value[seed].zero_()
            return
        self.steps[seed] = int(float(state[0]["step"]))
        for name, values in self.state.items():
            for i, value in enumerate(values):
                value[seed].copy_(state[i][name])


def stack_batches(batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-seed batches (``[B, T_s, ...]``, each trimmed to its own longest episode) as one
    ``[S, B, T, ...]``, T the longest: the extra steps are padding (``filled`` false), which
    the loss masks."""
    steps = max(batch["filled"].shape[1] for batch in batches)
    stacked = {}
    for key in batches[0]:
        length = steps + 1 if key in ("obs", "state", "avail") else steps
        rows = []
        for batch in batches:
            value = batch[key]
            missing = length - value.shape[1]
            if missing:
                pad = value.new_zeros((value.shape[0], missing, *value.shape[2:]))
                value = torch.cat([value, pad], dim=1)
            rows.append(value)
        stacked[key] = torch.stack(rows)
    return stacked


class _Loss(nn.Module):
    """A learner's :meth:`QMIXLearner.loss` as a forward pass over its policy and targets, so
    ``functional_call`` can swap in one seed's parameters."""

    def __init__(self, learner: QMIXLearner) -> None:
        super().__init__()
        self.policy, self.targets = learner.policy, learner.targets
        self.learner = [learner]  # a list: not a submodule

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.learner[0].loss(batch)


class StackedLearner:
    """The updates of S seeds' learners, run together (see the module docstring).

    Args:
        config: the seeds' config (every seed's but for its seed; the group checks).
        learners: seed s's learner at position s; their policies' and targets' parameters
            become views of the stacks this learner trains.
    """

    def __init__(self, config: Any, learners: Sequence[QMIXLearner]) -> None:
        self.config = config
        self.learners = list(learners)
        self.policies = StackedModules([learner.policy for learner in learners])
        self.targets = StackedModules([learner.targets for learner in learners],
                                      requires_grad=False)
        names = [name for name, p in learners[0].policy.named_parameters() if p.requires_grad]
        self.trained = names
        self.optimizer = StackedOptimizer(config, [self.policies.params[name] for name in names])
        for seed in range(len(self.learners)):  # seeds loaded from a checkpoint before
            self.load_optimizer(seed)
        template = REGISTRY_LEARNER[config.learner](config, vmappable(learners[0].policy))
        self._loss = _Loss(template)
        self.max_norm = config.grad_clip_norm if config.use_grad_clip else math.inf

    # --- the seeds' own optimisers (checkpoints) -------------------------------------------
    def export_optimizer(self, seed: int) -> None:
        """Put seed ``seed``'s optimiser rows into its own learner's ``torch.optim`` optimiser,
        so that its ``state_dict`` is what a run of that seed alone would save."""
        optimizer = self.learners[seed].optimizer
        params = optimizer.param_groups[0]["params"]
        optimizer.state.clear()
        for i, state in self.optimizer.seed_state(seed).items():
            optimizer.state[params[i]] = state

    def load_optimizer(self, seed: int) -> None:
        """Take seed ``seed``'s optimiser rows from its own learner's optimiser (after it loaded
        a checkpoint)."""
        optimizer = self.learners[seed].optimizer
        params = optimizer.param_groups[0]["params"]
        self.optimizer.load_seed_state(seed, {i: optimizer.state[p] for i, p in enumerate(params)
                                              if optimizer.state.get(p)})

    # --- the update ------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor], seeds: Sequence[int]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every seed's :meth:`QMIXLearner.loss` on its rows of ``batch [S', B, T, ...]``:
        losses ``[S']`` and statistics ``{name: [S']}``."""
        every = list(seeds) == list(range(len(self.learners)))
        state = {**prefixed(self.policies.state(None if every else seeds), "policy"),
                 **prefixed(self.targets.state(None if every else seeds), "targets")}
        module = self._loss

        def one_seed(seed_state, seed_batch):
            return torch.func.functional_call(module, seed_state, (seed_batch,))

        return torch.func.vmap(one_seed)(state, batch)

    def clip_gradients(self, seeds: Sequence[int]) -> torch.Tensor:
        """Clip each seed's gradient norm (over its rows of every parameter) as
        ``clip_grad_norm_`` clips a single seed's; returns the norms before clipping ``[S']``."""
        index = torch.as_tensor(list(seeds), device=self.policies.params[self.trained[0]].device)
        grads = [self.policies.params[name].grad for name in self.trained]
        norms = torch.stack([grad.index_select(0, index).flatten(1).norm(dim=1)
                             for grad in grads])  # [n_params, S']
        total = norms.norm(dim=0)
        scale = torch.zeros(len(self.learners), device=index.device)
        scale[index] = (self.max_norm / (total + 1e-6)).clamp(max=1.0)
        for grad in grads:
            grad.mul_(scale.view(-1, *(1,) * (grad.dim() - 1)))
        return total

    def update(self, batches: Sequence[dict[str, torch.Tensor] | None],
               episodes: Sequence[int | None]) -> list[dict[str, float] | Exception]:
        """One gradient step for every seed s with a batch (``batches[s]`` None: no update for
        seed s in this round): per seed, its statistics (as its own :meth:`QMIXLearner.update`
        returns them), None for a seed without a batch, or the NonFiniteLossError its own
        learner would have raised (its networks and optimiser left as they were)."""
        seeds = [seed for seed, batch in enumerate(batches) if batch is not None]
        results: list[Any] = [None] * len(batches)
        if not seeds:
            return results
        losses, tensors = self.losses(stack_batches([batches[s] for s in seeds]), seeds)
        for param in self.policies.params.values():
            param.grad = None
        losses.sum().backward()
        tensors["grad_norm"] = self.clip_gradients(seeds)
        names = list(tensors)
        values = torch.stack([tensors[name].detach() for name in names], dim=1).tolist()
        stepped = []
        for row, seed in zip(values, seeds):
            stats = dict(zip(names, row))
            try:
                self.learners[seed]._check_finite(stats)
            except NonFiniteLossError as error:
                results[seed] = error
                continue
            results[seed] = stats
            stepped.append(seed)
        if stepped:  # the rows of the other seeds do not move
            self.optimizer.step(stepped)
        for seed in stepped:
            learner = self.learners[seed]
            learner.updates += 1
            learner.maybe_sync(episodes[seed])
        return results
