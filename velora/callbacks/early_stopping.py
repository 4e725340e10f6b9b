"""Stop training once the agent keeps reaching a target return."""

from velora.callbacks.base import TrainCallback
from velora.training import TrainState
from velora.utils.checks import check_int


class EarlyStopping(TrainCallback):
    """Stops training once the episode return reaches `target` on `patience` episodes in a row.

    Args:
        target: the episode return to reach.
        patience: consecutive episodes at or above `target` needed (>= 1).
    """

    def __init__(self, target: float, *, patience: int = 3) -> None:
        check_int("patience", patience)
        self.target = float(target)
        self.patience = patience
        self.streak = 0

    def on_train_start(self, state: TrainState) -> None:
        self.streak = 0

    def on_episode_end(self, state: TrainState) -> bool:
        self.streak = self.streak + 1 if state.episode_reward >= self.target else 0
        return self.streak < self.patience

    def summary(self) -> str:
        return f"EarlyStopping(target={self.target:g}, patience={self.patience})"

    def config(self) -> dict:
        return {"target": self.target, "patience": self.patience}
