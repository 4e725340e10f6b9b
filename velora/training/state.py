"""What callbacks see of a training run: a read-only state and the final summary."""

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainSummary:
    """What `train()` returns once it ends."""

    episodes: int
    steps: int
    time_taken: float
    early_stopped: bool
    interrupted: bool
    experiment_id: int
    reward_avg: float
    reward_max: float
    losses: dict[str, float] = field(default_factory=dict)


class TrainState:
    """A read-only view of a running training loop, handed to every callback hook.

    Counters are cumulative over an agent's life: a resumed agent continues its episode
    and step numbering. Callbacks read it; to stop training, return `False` from a hook.

    Attributes:
        agent: the agent being trained.
        env: the training environment (a `gymnasium.vector.SyncVectorEnv` of `n_envs`
            sub-envs when `n_envs > 1`).
        env_id / env_name: the Gymnasium id and the id without namespace and version.
        n_episodes, batch_size, window_size, log_freq, display_count, max_steps,
            warmup_steps, updates_per_step, n_envs, db_path: the `train()` settings
            (`TrainConfig`), with `warmup_steps` resolved.
        episode: number of the current (or just finished) episode, from 1.
        start_episode: the agent's episode count before this `train()` call.
        step: environment steps taken by the agent so far (all sub-envs counted).
        episode_reward, episode_length: return and length of the last finished episode.
        rewards: returns of the last `window_size` episodes.
        reward_moving_avg, reward_moving_std, reward_max: statistics of the returns.
        losses: mean actor/critic/entropy losses of the last finished episode.
        status: "running", "completed", "early_stopped", "interrupted" or "failed".
        callbacks: the run's callbacks, in the order their hooks run.
        start_time: `time.perf_counter()` when training began.
    """

    def __init__(self, **values: Any) -> None:
        defaults = {
            "n_envs": 1,
            "episode": 0,
            "step": 0,
            "episode_reward": 0.0,
            "episode_length": 0,
            "rewards": (),
            "reward_moving_avg": 0.0,
            "reward_moving_std": 0.0,
            "reward_max": float("-inf"),
            "losses": {"actor_loss": 0.0, "critic_loss": 0.0, "entropy_loss": 0.0},
            "status": "running",
            "start_time": time.perf_counter(),
        }
        self._update(**{**defaults, **values})

    def _update(self, **values: Any) -> None:
        """Used by the training loop only."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            "TrainState is read-only for callbacks; return False from a hook to stop training."
        )

    @property
    def latest_evaluation(self) -> dict[str, Any] | None:
        """The run's last evaluation (`Evaluate`): episode, steps, episodes (played),
        mean_return, std_return, mean_length, best_mean_return, improved; None before
        the first."""
        return self.agent.progress.callback_state.get("evaluation")

    @property
    def new_evaluation(self) -> dict[str, Any] | None:
        """`latest_evaluation` if it was made at the episode that just ended, else None:
        what callbacks acting on evaluations look at in `on_episode_end`."""
        latest = self.latest_evaluation
        return latest if latest is not None and latest["episode"] == self.episode else None

    @property
    def elapsed(self) -> float:
        """Seconds since training started."""
        return time.perf_counter() - self.start_time

    @property
    def early_stopped(self) -> bool:
        return self.status == "early_stopped"
