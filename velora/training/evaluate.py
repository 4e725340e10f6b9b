"""Deterministic evaluation of an agent on its evaluation env."""

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from velora.training.config import TrainConfig

if TYPE_CHECKING:
    from velora.models import NeuroFlow


@dataclass(frozen=True)
class EvaluationResult:
    """The returns and lengths of a batch of deterministic episodes."""

    returns: list[float]
    lengths: list[int]

    @property
    def mean_return(self) -> float:
        return statistics.fmean(self.returns)

    @property
    def std_return(self) -> float:
        return statistics.pstdev(self.returns)

    @property
    def mean_length(self) -> float:
        return statistics.fmean(self.lengths)


def evaluate_policy(
    agent: "NeuroFlow",
    n_episodes: int = 5,
    *,
    max_steps: int = TrainConfig.max_steps,
    seed: int | None = None,
) -> EvaluationResult:
    """Play `n_episodes` deterministic episodes on `agent.eval_env`; no learning.

    The hidden state starts at zero each episode and is carried between steps, as in
    training. With a `seed`, episode `i` starts from `reset(seed=seed + i)`, so every
    evaluation with that seed plays from the same start states; without one the env's
    own generator goes on.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}.")
    returns, lengths = [], []
    for episode in range(n_episodes):
        state, _ = agent.eval_env.reset(seed=None if seed is None else seed + episode)
        hidden = None
        total, length = 0.0, 0
        while length < max_steps:
            action, hidden = agent.predict(state, hidden)
            state, reward, terminated, truncated, _ = agent.eval_env.step(action)
            total += float(reward)
            length += 1
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(length)
    return EvaluationResult(returns, lengths)


def evaluate_agent(
    agent: "NeuroFlow",
    n_episodes: int = 5,
    *,
    max_steps: int = TrainConfig.max_steps,
    seed: int | None = None,
) -> list[float]:
    """The returns of `evaluate_policy` (same arguments)."""
    return evaluate_policy(agent, n_episodes, max_steps=max_steps, seed=seed).returns
