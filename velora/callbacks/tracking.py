"""What every tracker logs, under the same names (Comet's, TensorBoard's)."""

import math

from velora.metrics import EpisodeRecord


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
    }
    return {name: value for name, value in metrics.items() if not math.isnan(value)}


def evaluation_metrics(evaluation: dict) -> dict[str, float]:
    """One evaluation (`TrainState.latest_evaluation`) by tracker name."""
    return {
        "eval/mean_return": evaluation["mean_return"],
        "eval/std_return": evaluation["std_return"],
        "eval/mean_length": evaluation["mean_length"],
    }
