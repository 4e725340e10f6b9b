"""Look inside an agent: its actor's circuit and what its neurons do in an episode."""

from velora.inspection.activity import EpisodeActivity, plot_activity, record_activity
from velora.inspection.circuit import Circuit, Neuron, Synapse, circuit_of, draw_circuit
from velora.inspection.report import InspectionFiles, inspect_agent

__all__ = [
    "Circuit",
    "Neuron",
    "Synapse",
    "circuit_of",
    "draw_circuit",
    "EpisodeActivity",
    "record_activity",
    "plot_activity",
    "InspectionFiles",
    "inspect_agent",
]
