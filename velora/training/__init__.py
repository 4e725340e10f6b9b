"""The training loop, its settings, the callback base class and the state callbacks see.

Everything here but the loop imports neither torch nor gymnasium; the loop loads on the
first use of `train_agent`.
"""

from typing import Any

from velora.training.callback import TrainCallback
from velora.training.config import TrainConfig
from velora.training.evaluate import EvaluationResult, evaluate_agent, evaluate_policy
from velora.training.progress import TrainProgress
from velora.training.state import TrainState, TrainSummary

__all__ = [
    "train_agent",
    "evaluate_agent",
    "evaluate_policy",
    "EvaluationResult",
    "TrainCallback",
    "TrainConfig",
    "TrainProgress",
    "TrainState",
    "TrainSummary",
]


def __getattr__(name: str) -> Any:
    if name == "train_agent":
        from velora.training.loop import train_agent

        return train_agent
    raise AttributeError(f"module 'velora.training' has no attribute {name!r}")
