"""What the learner needs to know about an environment, independent of its API."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EnvSpec:
    """Sizes of the arrays a vectorised env exchanges.

    Attributes:
        agents: agent names, in the order of the ``n_agents`` axis.
        obs_dim: length of each agent's (flattened, padded) observation.
        state_dim: length of the global state.
        n_actions: number of discrete actions (the largest over agents; the rest are masked).
        max_episode_steps: time limit T; episodes never run longer.
    """

    agents: tuple[str, ...]
    obs_dim: int
    state_dim: int
    n_actions: int
    max_episode_steps: int

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    def to_dict(self) -> dict:
        return asdict(self)
