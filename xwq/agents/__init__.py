"""The registered agents: IQL, VDN, QMIX and WQMIX (CW or OW by ``weighting``)."""

from xwq.agents.base import MARLAgents
from xwq.agents.buffer import BufferTooLargeError, EpisodeBuffer
from xwq.registry import REGISTRY_AGENT


@REGISTRY_AGENT.register("IQL")
class IQL_Agents(MARLAgents):
    """Independent Q-learners on the team reward (no mixer)."""

    requires = {"mixer": (None,), "learner": ("QMIX_Learner",),
                "policy": ("Mixing_Q_network",)}


@REGISTRY_AGENT.register("VDN")
class VDN_Agents(MARLAgents):
    """Value decomposition networks: Q_tot = Σ Q_i."""

    requires = {"mixer": ("VDN",), "learner": ("QMIX_Learner",),
                "policy": ("Mixing_Q_network",)}


@REGISTRY_AGENT.register("QMIX")
class QMIX_Agents(MARLAgents):
    """QMIX: monotonic hypernetwork mixer."""

    requires = {"mixer": ("QMIX",), "learner": ("QMIX_Learner",),
                "policy": ("Mixing_Q_network",)}


@REGISTRY_AGENT.register("WQMIX")
class WQMIX_Agents(MARLAgents):
    """Weighted QMIX: QMIX plus Q̂* and a weighted loss (``weighting: cw|ow``, ``alpha``)."""

    requires = {"mixer": ("QMIX",), "learner": ("WQMIX_Learner",),
                "policy": ("Weighted_Mixing_Q_network",)}


__all__ = ["BufferTooLargeError", "EpisodeBuffer", "IQL_Agents", "MARLAgents", "QMIX_Agents",
           "VDN_Agents", "WQMIX_Agents"]
