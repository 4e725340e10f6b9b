"""The NeuroFlow agents and the building blocks users can reuse."""

from velora.buffer import ReplayBuffer
from velora.models.config import AgentConfig
from velora.models.critic import CriticEnsemble
from velora.models.heads import ContinuousHead, DiscreteHead, PolicyHead, PolicySample
from velora.models.neuroflow import NeuroFlow, NeuroFlowCT
from velora.nn import LiquidCell, LiquidNCPNetwork, NCPNetwork, SparseLinear, Wiring

__all__ = [
    "NeuroFlow",
    "NeuroFlowCT",
    "AgentConfig",
    "CriticEnsemble",
    "PolicyHead",
    "PolicySample",
    "ContinuousHead",
    "DiscreteHead",
    "ReplayBuffer",
    "Wiring",
    "SparseLinear",
    "LiquidCell",
    "LiquidNCPNetwork",
    "NCPNetwork",
]
