"""Joint-action value tables of a one-step two-agent game (the paper's matrix game analysis)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def joint_action_tables(agents: Any) -> dict[str, np.ndarray]:
    """Q_tot of every joint action ``[n_actions, n_actions]`` (rows: agent 1) at the all-ones
    observation and state of the matrix game, Q̂* too for Weighted QMIX, and each agent's
    greedy action (``greedy_actions``)."""
    policy = agents.policy
    n = policy.n_actions
    device = next(policy.parameters()).device
    obs = torch.ones(1, 1, 2, agents.spec.obs_dim, device=device)
    inputs = policy.build_inputs(obs, torch.full((1, 1, 2), -1, device=device))
    state = torch.ones(n, n, agents.spec.state_dim, device=device)
    tables: dict[str, np.ndarray] = {}
    with torch.no_grad():
        networks = [("q_tot", policy.agent, policy.mix)]
        if hasattr(policy, "star_agent"):
            networks.append(("q_star", policy.star_agent, policy.star_mixer))
        for name, agent, mix in networks:
            q = agent(inputs)[0][0, 0]
            if name == "q_tot":
                tables["greedy_actions"] = q.argmax(dim=-1).cpu().numpy()
            joint = torch.stack(torch.meshgrid(q[0], q[1], indexing="ij"), dim=-1)
            tables[name] = mix(joint, state).cpu().numpy()
    return tables
