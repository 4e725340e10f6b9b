"""The training loop, the state callbacks see, and the console display."""

from velora.training.evaluate import evaluate_agent
from velora.training.loop import train_agent
from velora.training.state import TrainState, TrainSummary

__all__ = ["train_agent", "evaluate_agent", "TrainState", "TrainSummary"]
