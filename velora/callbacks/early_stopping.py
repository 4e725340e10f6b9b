"""Stop training once the agent keeps reaching a target return."""

from velora.callbacks.evaluate import Evaluate
from velora.training import TrainCallback, TrainState
from velora.utils.checks import check_int


class EarlyStopping(TrainCallback):
    """Stops training once the return reaches `target` on `patience` checks in a row.

    By default every training episode is a check, scored by its return. Training
    episodes act stochastically, which keeps their returns below what the policy can
    do (markedly so for discrete SAC's high entropy target); with `eval_every=k` the
    check instead runs every `k` episodes and scores the mean return of `eval_episodes`
    deterministic episodes (an `Evaluate` run inside, so they are recorded in the
    metrics database's `evaluation` table too).

    Args:
        target: the return to reach.
        patience: consecutive checks at or above `target` needed (>= 1).
        eval_every: evaluate every this many episodes instead of scoring training returns.
        eval_episodes: deterministic episodes per evaluation.
    """

    def __init__(
        self,
        target: float,
        *,
        patience: int = 3,
        eval_every: int | None = None,
        eval_episodes: int = 5,
    ) -> None:
        check_int("patience", patience)
        if eval_every is not None:
            check_int("eval_every", eval_every)
        check_int("eval_episodes", eval_episodes)
        self.target = float(target)
        self.patience = patience
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.evaluation = None if eval_every is None else Evaluate(eval_every, eval_episodes)
        self.streak = 0
        self.last_score: float | None = None

    def on_train_start(self, state: TrainState) -> None:
        self.streak = 0

    def on_episode_end(self, state: TrainState) -> bool:
        if self.evaluation is None:
            score = state.episode_reward
        elif self.evaluation.due(state):
            score = self.evaluation.evaluate(state).mean_return
        else:
            return True
        self.last_score = score
        self.streak = self.streak + 1 if score >= self.target else 0
        return self.streak < self.patience

    def summary(self) -> str:
        how = f", evaluated every {self.eval_every} episodes" if self.eval_every else ""
        return f"EarlyStopping(target={self.target:g}, patience={self.patience}{how})"

    def config(self) -> dict:
        return {
            "target": self.target,
            "patience": self.patience,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
        }
