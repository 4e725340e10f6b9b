"""Deterministic evaluation of an agent on its evaluation env."""

from typing import TYPE_CHECKING

from velora.training.config import TrainConfig

if TYPE_CHECKING:
    from velora.models import NeuroFlow


def evaluate_agent(
    agent: "NeuroFlow",
    n_episodes: int = 5,
    *,
    max_steps: int = TrainConfig.max_steps,
    seed: int | None = None,
) -> list[float]:
    """Returns of `n_episodes` deterministic episodes on `agent.eval_env`.

    The hidden state starts at zero each episode and is carried between steps, as in
    training. `seed` seeds the first reset, for repeatable evaluations.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}.")
    returns = []
    for episode in range(n_episodes):
        state, _ = agent.eval_env.reset(seed=seed if episode == 0 else None)
        hidden = None
        total = 0.0
        for _ in range(max_steps):
            action, hidden = agent.predict(state, hidden)
            state, reward, terminated, truncated, _ = agent.eval_env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        returns.append(total)
    return returns
