"""Evaluate the deterministic policy every so often, and record it in `metrics.db`."""

from velora.metrics import EvaluationRecord, write_evaluation
from velora.training import EvaluationResult, TrainCallback, TrainState, evaluate_policy
from velora.utils.checks import check_int

#: Added to the agent's seed for the evaluation episodes' start states, so that they
#: differ from the training env's.
EVAL_SEED_OFFSET = 10_000


class Evaluate(TrainCallback):
    """Every `every` episodes, play `episodes` deterministic episodes on `agent.eval_env`
    (no learning; training's random streams untouched) and record their mean, std and
    length in the `evaluation` table of the run's metrics database.

    Each evaluation starts its episodes from the same states (`reset(seed=seed + i)`,
    by default the agent's seed plus `EVAL_SEED_OFFSET`), so evaluations are compared
    on equal terms. `results` holds this run's as `(episode, EvaluationResult)` pairs,
    and `best` the best mean return so far, over the agent's life (it is saved with the
    agent, as is the latest evaluation, `TrainState.latest_evaluation`). Evaluations run
    before the other callbacks' hooks of the same episode, which can act on them.

    Args:
        every: evaluate after every episode whose number (over the agent's life, as
            for checkpoints) is a multiple of this, so a resumed run keeps the rhythm.
        episodes: deterministic episodes per evaluation.
        seed: the first evaluation episode's reset seed.
    """

    order = -10  # before the callbacks that act on evaluations
    evaluates = True

    def __init__(self, every: int, episodes: int = 5, *, seed: int | None = None) -> None:
        check_int("every", every)
        check_int("episodes", episodes)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        self.every = every
        self.episodes = episodes
        self.seed = seed
        self.results: list[tuple[int, EvaluationResult]] = []
        self.best: float | None = None

    def due(self, state: TrainState) -> bool:
        """Whether the episode that just ended is one to evaluate after."""
        return state.episode % self.every == 0

    def evaluate(self, state: TrainState) -> EvaluationResult:
        """Evaluate now and record it (the console shows it); returns the result."""
        agent = state.agent
        seed = agent.seed + EVAL_SEED_OFFSET if self.seed is None else self.seed
        result = evaluate_policy(agent, self.episodes, max_steps=state.max_steps, seed=seed)
        record = EvaluationRecord(
            episode_num=state.episode,
            steps=state.step,
            mean_return=result.mean_return,
            std_return=result.std_return,
            mean_length=result.mean_length,
        )
        write_evaluation(state.db_path, state.experiment_id, record)
        self.results.append((state.episode, result))
        previous = state.latest_evaluation
        best = None if previous is None else previous["best_mean_return"]
        improved = best is None or result.mean_return > best
        self.best = result.mean_return if improved else best
        state.agent.progress.callback_state["evaluation"] = {
            "episode": state.episode,
            "steps": state.step,
            "episodes": self.episodes,
            "mean_return": result.mean_return,
            "std_return": result.std_return,
            "mean_length": result.mean_length,
            "best_mean_return": self.best,
            "improved": improved,
        }
        return result

    def on_train_start(self, state: TrainState) -> None:
        latest = state.latest_evaluation
        self.best = None if latest is None else latest["best_mean_return"]

    def on_episode_end(self, state: TrainState) -> bool:
        if self.due(state):
            self.evaluate(state)
        return True

    def summary(self) -> str:
        return f"Evaluate(every={self.every}, episodes={self.episodes})"

    def config(self) -> dict:
        return {"every": self.every, "episodes": self.episodes, "seed": self.seed}


def has_evaluations(state: TrainState) -> bool:
    """Whether some callback of the run evaluates the policy (`Evaluate`, or
    `EarlyStopping` with `eval_every`, which runs one)."""
    return any(callback.evaluates for callback in state.callbacks)
