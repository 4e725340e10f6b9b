"""Stop training once the agent keeps reaching a target return."""

from velora.callbacks.evaluate import Evaluate, has_evaluations
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
        self.evaluates = self.evaluation is not None
        if self.evaluates:  # its evaluations come before the callbacks acting on them
            self.order = Evaluate.order
        self.streak = 0
        self.last_score: float | None = None

    def on_train_start(self, state: TrainState) -> None:
        self.streak = 0
        if self.evaluation is not None:
            self.evaluation.on_train_start(state)

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


class StopOnNoImprovement(TrainCallback):
    """Stops training after `patience` evaluations in a row without a new best mean
    return, by at least `min_delta`; the first `min_evals` evaluations never count
    towards `patience` (a grace period, as in Stable-Baselines3's
    `StopTrainingOnNoModelImprovement`).

    It acts on the evaluations of an `Evaluate` (or `EarlyStopping(eval_every=...)`)
    in the same run; without one it refuses to start. Its count is saved with the
    agent, so a resumed run goes on counting.

    Args:
        patience: evaluations without improvement before stopping (>= 1).
        min_delta: how much a mean return must beat the best to count as better.
        min_evals: evaluations before any can count towards `patience`.
    """

    def __init__(self, patience: int, *, min_delta: float = 0.0, min_evals: int = 0) -> None:
        check_int("patience", patience)
        check_int("min_evals", min_evals, minimum=0)
        if not min_delta >= 0.0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}.")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.min_evals = min_evals

    def on_train_start(self, state: TrainState) -> None:
        if not has_evaluations(state):
            raise ValueError(
                "StopOnNoImprovement needs evaluations to rank: add an Evaluate(every=...) "
                "callback (or EarlyStopping(..., eval_every=...)) to the same train() call."
            )

    def counts(self, state: TrainState) -> dict:
        """Evaluations seen, the best mean return and evaluations since (saved state)."""
        default = {"evaluations": 0, "best": None, "without_improvement": 0}
        return state.agent.progress.callback_state.setdefault(type(self).__name__, default)

    def on_episode_end(self, state: TrainState) -> bool:
        latest = state.new_evaluation
        if latest is None:
            return True
        counts = self.counts(state)
        counts["evaluations"] += 1
        mean = latest["mean_return"]
        if counts["best"] is None or mean > counts["best"] + self.min_delta:
            counts["best"], counts["without_improvement"] = mean, 0
        elif counts["evaluations"] > self.min_evals:
            counts["without_improvement"] += 1
        return counts["without_improvement"] < self.patience

    def summary(self) -> str:
        return f"StopOnNoImprovement(patience={self.patience} evaluations)"

    def config(self) -> dict:
        return {"patience": self.patience, "min_delta": self.min_delta, "min_evals": self.min_evals}
