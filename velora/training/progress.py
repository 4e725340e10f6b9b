"""How far an agent has trained: the counters that carry over between `train()` calls."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainProgress:
    """An agent's training progress; the loop advances it, a save keeps it whole.

    A resumed agent continues its episode and step numbering, its moving average and
    its row in the metrics database.
    """

    episodes: int = 0
    """Episodes finished, over every `train()` call."""
    steps: int = 0
    """Environment steps taken (every sub-env's counted)."""
    recent_rewards: list[float] = field(default_factory=list)
    """The last returns, for the moving average."""
    reward_max: float | None = None
    """The best return so far."""
    experiment_id: int | None = None
    """The run's row in the metrics database, once recorded."""
    callback_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What callbacks carry over to a resumed run (JSON values), by callback name."""
