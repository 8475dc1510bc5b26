"""Policies: mixers, agent Q networks, ε-greedy exploration."""

from xwq.policies.exploration import EpsilonSchedule, epsilon_greedy, masked_argmax
from xwq.policies.mixers import FeedForwardMixer, Mixer, QMixer, VDNMixer
from xwq.policies.normalization import InputNormalizer
from xwq.policies.q_networks import AgentNetwork, MixingQNetwork, WeightedMixingQNetwork

__all__ = ["AgentNetwork", "EpsilonSchedule", "FeedForwardMixer", "InputNormalizer", "Mixer",
           "MixingQNetwork",
           "QMixer", "VDNMixer", "WeightedMixingQNetwork", "epsilon_greedy", "masked_argmax"]
