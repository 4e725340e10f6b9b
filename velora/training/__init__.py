"""The training loop, the state callbacks see, and the console display."""

from velora.training.loop import train_agent
from velora.training.state import TrainState, TrainSummary

__all__ = ["train_agent", "TrainState", "TrainSummary"]
