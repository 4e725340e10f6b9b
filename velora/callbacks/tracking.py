"""What every tracker logs, under the same names (Comet's, TensorBoard's, MLflow's)."""

import math
from typing import Any

from velora.metrics import EpisodeRecord
from velora.training import TrainState


def episode_metrics(record: EpisodeRecord) -> dict[str, float]:
    """One episode's metrics by tracker name; NaN ones (before learning starts) left out."""
    metrics = {
        "episode/return": record.reward,
        "episode/length": record.length,
        "reward/moving_avg": record.reward_moving_avg,
        "reward/moving_upper": record.reward_moving_avg + record.reward_moving_std,
        "reward/moving_lower": record.reward_moving_avg - record.reward_moving_std,
        "losses/actor_loss": record.actor_loss,
        "losses/critic_loss": record.critic_loss,
        "losses/entropy_loss": record.entropy_loss,
        "alpha": record.alpha,
    }
    return {name: value for name, value in metrics.items() if not math.isnan(value)}


def evaluation_metrics(evaluation: dict) -> dict[str, float]:
    """One evaluation (`TrainState.latest_evaluation`) by tracker name."""
    return {
        "eval/mean_return": evaluation["mean_return"],
        "eval/std_return": evaluation["std_return"],
        "eval/mean_length": evaluation["mean_length"],
    }


def new_evaluation_metrics(state: TrainState) -> dict[str, float]:
    """The evaluation made at the episode that just ended, by tracker name; empty if none.

    Trackers call it from `on_episode_end`: `Evaluate` runs first (its `order`), so an
    evaluation due at this episode is already in the state.
    """
    latest = state.new_evaluation
    return {} if latest is None else evaluation_metrics(latest)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of `a/b/c` keys (trackers take flat parameters)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
