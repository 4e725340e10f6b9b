"""EarlyStopping: on training returns, and on deterministic evaluations."""

import pytest
import torch
from gymnasium import spaces

from velora.callbacks import EarlyStopping, TrainCallback
from velora.models import NeuroFlow

TINY = dict(actor_neurons=8, critic_neurons=16, buffer_size=5_000)


class Returns(TrainCallback):
    def __init__(self) -> None:
        self.returns: list[float] = []

    def on_episode_end(self, state):
        self.returns.append(state.episode_reward)


def test_stops_after_patience_episodes_in_a_row_at_target():
    agent = NeuroFlow("CartPole-v1", **TINY, seed=0)
    seen = Returns()
    target = 15.0
    summary = agent.train(16, n_episodes=200, callbacks=[seen, EarlyStopping(target, patience=2)])
    assert summary.early_stopped
    # The last two returns reach the target, and no earlier pair in a row did.
    assert all(r >= target for r in seen.returns[-2:])
    pairs = zip(seen.returns[:-2], seen.returns[1:-1], strict=True)
    assert not any(a >= target and b >= target for a, b in pairs)


def test_evaluation_mode_scores_deterministic_episodes(register_env):
    # Returns lie in [0, 1] (0.1 per step choosing action 1): any score reaches -1.
    env_id = register_env(spaces.Discrete(2), episode_len=10)
    agent = NeuroFlow(env_id, **TINY, seed=0)
    seen = Returns()
    stop = EarlyStopping(-1.0, patience=2, eval_every=3, eval_episodes=2)
    summary = agent.train(16, n_episodes=50, callbacks=[seen, stop])
    # Only the evaluations at episodes 3 and 6 count: stop after episode 6, not 2.
    assert summary.early_stopped and summary.episodes == 6
    assert 0.0 <= stop.last_score <= 1.0


def test_evaluation_leaves_training_random_streams_untouched():
    def weights(callbacks):
        agent = NeuroFlow("CartPole-v1", **TINY, seed=3)
        agent.train(16, n_episodes=6, callbacks=callbacks)
        return torch.cat([p.flatten() for p in agent.actor.parameters()])

    unreachable = EarlyStopping(1e9, eval_every=2, eval_episodes=2)
    assert torch.equal(weights([]), weights([unreachable]))
    assert unreachable.last_score is not None


@pytest.mark.parametrize("kwargs", [{"patience": 0}, {"eval_every": 0}, {"eval_episodes": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EarlyStopping(1.0, **kwargs)
