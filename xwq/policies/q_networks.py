"""Agent Q networks and the mixing policies built from them.

- :class:`AgentNetwork`: a shared body (:mod:`xwq.representations`) and a linear Q head.
- :class:`MixingQNetwork`: the agent network and a mixer (VDN, QMIX, or none for IQL).
- :class:`WeightedMixingQNetwork`: the same, plus Weighted QMIX's Q̂* — its own agent network
  (same architecture, separate parameters) and the feed-forward mixer.

Observations (any dtype: uint8 images arrive as they are stored) become float and are scaled
by the policy's ``obs_normalizer`` in :meth:`MixingQNetwork.build_inputs`; every mixer scales
its state input with its own copy of the state's scaling (config key ``input_normalization``,
:mod:`xwq.policies.normalization`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xwq.environment.interfaces import EnvSpec
from xwq.policies.exploration import masked_argmax, masked_argmax_numpy
from xwq.policies.mixers import MIXERS, FeedForwardMixer
from xwq.policies.normalization import InputNormalizer
from xwq.registry import REGISTRY_POLICY, REGISTRY_REPRESENTATION


class AgentNetwork(nn.Module):
    """Per-agent Q values, parameters shared across agents: a body of ``representation``
    (:mod:`xwq.representations`) with the given widths, then a linear head.

    ``forward(inputs [B, T, n, input_dim], hidden [B*n, H] or None)
    -> (q [B, T, n, n_actions], hidden)``
    """

    def __init__(self, representation: str, input_dim: int, n_actions: int,
                 fc_hidden_sizes: list[int], recurrent_hidden_size: int) -> None:
        super().__init__()
        body = REGISTRY_REPRESENTATION[representation]
        self.body = body(input_dim=input_dim, fc_hidden_sizes=list(fc_hidden_sizes),
                         recurrent_hidden_size=recurrent_hidden_size)
        self.head = nn.Linear(self.body.output_dim, n_actions)

    def initial_hidden(self, batch: int, device: torch.device) -> torch.Tensor | None:
        return self.body.initial_hidden(batch, device)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        features, hidden = self.body(inputs, hidden)
        return self.head(features), hidden

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One time step of rows: ``inputs [R, input_dim]``, ``hidden [R, H]`` or None ->
        ``(q [R, n_actions], hidden)``, the numbers :meth:`forward` gives on a one-step
        sequence (through the body's ``step`` when it has one, :mod:`xwq.representations`)."""
        body_step = getattr(self.body, "step", None)
        if body_step is None:
            rows = inputs.shape[0]
            q, hidden = self.forward(inputs.view(rows, 1, 1, -1), hidden)
            return q.view(rows, -1), hidden
        features, hidden = body_step(inputs, hidden)
        return F.linear(features, self.head.weight, self.head.bias), hidden


@REGISTRY_POLICY.register("Mixing_Q_network")
class MixingQNetwork(nn.Module):
    """Agent network + mixer: the policy of IQL (``mixer: null``), VDN and QMIX.

    Agent inputs are the observation ⊕ one-hot previous action (``obs_last_action``) ⊕ one-hot
    agent index (``obs_agent_id``), built once by :meth:`build_inputs` and shared by every
    agent network that reads them. The observation part is scaled there (``obs_normalizer``,
    from the spec's bounds and ``config.input_normalization``); each mixer scales the state.
    """

    def __init__(self, config: Any, spec: EnvSpec) -> None:
        super().__init__()
        self.spec = spec
        self.input_normalization = config.input_normalization
        self.obs_normalizer = InputNormalizer.from_bounds(
            *spec.obs_bounds(), integer=np.dtype(spec.obs_dtype).kind in "biu",
            mode=self.input_normalization)
        self.n_agents, self.n_actions = spec.n_agents, spec.n_actions
        self.obs_last_action = config.obs_last_action
        self.obs_agent_id = config.obs_agent_id
        self.input_dim = (spec.obs_dim + self.n_actions * self.obs_last_action
                          + self.n_agents * self.obs_agent_id)
        self.agent = AgentNetwork(config.representation, self.input_dim, self.n_actions,
                                  config.fc_hidden_sizes, config.recurrent_hidden_size)
        mixer_kwargs = dict(n_agents=self.n_agents, state_dim=spec.state_dim,
                            hidden_dim_mixing_net=config.hidden_dim_mixing_net,
                            hidden_dim_hyper_net=config.hidden_dim_hyper_net,
                            hypernet_layers=config.hypernet_layers,
                            state_normalizer=self.state_normalizer())
        self.mixer = MIXERS[config.mixer](**mixer_kwargs) if config.mixer else None
        # the acting path's inputs (:meth:`_acting_inputs`): an array reused while the number of
        # envs stays, and each previous action's one-hot, row a + 1 for action a, row 0 zeros
        self._inputs: np.ndarray | None = None
        self._one_hot = np.eye(self.n_actions + 1, self.n_actions, -1, dtype=np.float32)

    def state_normalizer(self) -> InputNormalizer:
        """A new scaling of the state for one mixer (each mixer owns its copy)."""
        spec = self.spec
        return InputNormalizer.from_bounds(
            *spec.state_bounds(), integer=np.dtype(spec.state_dtype).kind in "biu",
            mode=self.input_normalization)

    def build_inputs(self, obs: torch.Tensor, prev_actions: torch.Tensor) -> torch.Tensor:
        """``obs [B, T, n, obs_dim]`` (any dtype; scaled here), ``prev_actions [B, T, n]``
        (-1: none yet) -> ``[B, T, n, input_dim]`` float."""
        obs = self.obs_normalizer(obs)
        parts = [obs]
        if self.obs_last_action:
            one_hot = F.one_hot(prev_actions.clamp(min=0), self.n_actions).to(obs.dtype)
            parts.append(one_hot * (prev_actions >= 0).unsqueeze(-1).to(obs.dtype))
        if self.obs_agent_id:
            eye = torch.eye(self.n_agents, device=obs.device, dtype=obs.dtype)
            parts.append(eye.expand(*obs.shape[:2], -1, -1))
        return torch.cat(parts, dim=-1)

    def mix(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``[*B, n]``, ``[*B, S]`` -> ``[*B]``; without a mixer (IQL) the agents' Qs pass
        through unchanged (``[*B, n]``)."""
        return agent_qs if self.mixer is None else self.mixer(agent_qs, state)

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor, prev_actions: torch.Tensor, avail: torch.Tensor,
               hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One acting step for K envs: ``obs [K, n, obs_dim]``, ``prev_actions [K, n]``,
        ``avail [K, n, A]`` -> greedy available actions ``[K, n]`` and the new hidden state."""
        inputs = self.build_inputs(obs.unsqueeze(1), prev_actions.unsqueeze(1))
        q, hidden = self.agent(inputs, hidden)
        return masked_argmax(q.squeeze(1), avail), hidden

    @torch.no_grad()
    def greedy_actions(self, obs: np.ndarray, prev_actions: torch.Tensor, avail: np.ndarray,
                       hidden: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor | None]:
        """:meth:`greedy` for the acting loop, from and to numpy: ``obs [K, n, obs_dim]`` (the
        env's dtype), ``prev_actions [K, n]``, ``avail [K, n, A]`` bool -> greedy actions
        ``[K, n]`` int64 and the new hidden state, the same as :meth:`greedy` gives (bit for bit
        on the CPU, tested). One step for one seed costs a handful of small calls, so each
        call counts: the inputs are assembled in a reused numpy array (no one-hot, eye or
        concatenation ops), the agent network runs its functional :meth:`AgentNetwork.step`,
        and the masked argmax is numpy's, on the Q values."""
        K, n = obs.shape[:2]
        rows = torch.from_numpy(self._acting_inputs(obs, prev_actions)).view(K * n, -1)
        device = self.obs_normalizer.span.device
        if rows.device != device:
            rows = rows.to(device)
        q, hidden = self.agent.step(rows, hidden)
        return masked_argmax_numpy(q.cpu().numpy().reshape(K, n, -1), avail), hidden

    def _acting_inputs(self, obs: np.ndarray, prev_actions: torch.Tensor) -> np.ndarray:
        """:meth:`build_inputs` for one step, ``[K, n, input_dim]`` float32, written into an
        array kept between calls (the agent-index block is written once)."""
        K, n, o = obs.shape[0], self.n_agents, self.spec.obs_dim
        inputs = self._inputs
        if inputs is None or inputs.shape[0] != K:
            inputs = self._inputs = np.zeros((K, n, self.input_dim), np.float32)
            if self.obs_agent_id:
                inputs[..., self.input_dim - n:] = np.eye(n, dtype=np.float32)
        if self.obs_normalizer.identity:
            inputs[..., :o] = obs  # a cast to float32, as ``.to(float32)`` does
        else:
            inputs[..., :o] = self.obs_normalizer(
                torch.as_tensor(obs, device=self.obs_normalizer.span.device)).cpu().numpy()
        if self.obs_last_action:
            inputs[..., o:o + self.n_actions] = self._one_hot[prev_actions.cpu().numpy() + 1]
        return inputs


@REGISTRY_POLICY.register("Weighted_Mixing_Q_network")
class WeightedMixingQNetwork(MixingQNetwork):
    """The QMIX policy plus Q̂*: its own agent network and an unrestricted feed-forward mixer.

    Q̂*'s agent network has the QMIX agent's architecture (``representation``, as many layers)
    with its own width, ``hidden_dim_star_agent``, for every layer; its mixer's width is
    ``hidden_dim_ff_mix_net`` (the paper: 64 and 256). Acting is QMIX's (greedy on the QMIX
    agent network); Q̂* only shapes the learning target.
    """

    def __init__(self, config: Any, spec: EnvSpec) -> None:
        super().__init__(config, spec)
        width = config.hidden_dim_star_agent
        self.star_agent = AgentNetwork(config.representation, self.input_dim, self.n_actions,
                                       [width] * len(config.fc_hidden_sizes), width)
        self.star_mixer = FeedForwardMixer(self.n_agents, spec.state_dim,
                                           hidden_dim_ff_mix_net=config.hidden_dim_ff_mix_net,
                                           state_normalizer=self.state_normalizer())
