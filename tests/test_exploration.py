"""Pink exploration noise: correlated draws for the policy's rollouts only."""

import numpy as np
import pytest
import torch
from test_persistence import module_tensors

from velora.models import NeuroFlow
from velora.models.exploration import PinkNoise
from velora.presets import load_preset


def lag_one_correlation(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


def draws(noise: PinkNoise, n: int, n_envs: int = 1) -> np.ndarray:
    return torch.stack([noise.sample(n_envs, torch.device("cpu")) for _ in range(n)]).numpy()


def test_pink_draws_are_standard_normal_and_correlated_in_time():
    x = draws(PinkNoise(action_dim=2, horizon=1000, seed=0), 4000, n_envs=3)
    assert x.shape == (4000, 3, 2) and x.dtype == np.float32
    per_step = x.reshape(-1)
    assert abs(per_step.mean()) < 0.2
    assert per_step.std() == pytest.approx(1.0, abs=0.15)
    for env in range(3):
        for dim in range(2):
            assert lag_one_correlation(x[:, env, dim]) > 0.5
    # Each env and dimension follows its own sequence.
    assert abs(np.corrcoef(x[:, 0, 0], x[:, 1, 0])[0, 1]) < 0.3
    assert abs(np.corrcoef(x[:, 0, 0], x[:, 0, 1])[0, 1]) < 0.3


def test_pink_draws_follow_the_seed():
    a, b = PinkNoise(1, 200, seed=5), PinkNoise(1, 200, seed=5)
    assert np.array_equal(draws(a, 450), draws(b, 450))
    assert not np.array_equal(draws(PinkNoise(1, 200, seed=6), 50), draws(a, 50))


def test_state_and_restore_go_on_with_the_same_draws():
    noise = PinkNoise(2, horizon=50, seed=1)
    draws(noise, 37, n_envs=2)  # mid-sequence: the restored copy must keep its place
    meta, tensors = noise.state()
    expected = draws(noise, 120, n_envs=2)  # across two sequence starts
    copy = PinkNoise(2, horizon=50, seed=99)
    copy.restore(meta, tensors)
    assert np.array_equal(draws(copy, 120, n_envs=2), expected)


def test_a_state_before_any_draw_restores_the_generator():
    fresh = PinkNoise(1, 30, seed=4)
    meta, tensors = fresh.state()
    assert meta["position"] is None and tensors == {}
    copy = PinkNoise(1, 30, seed=0)
    copy.restore(meta, tensors)
    assert np.array_equal(draws(copy, 40), draws(PinkNoise(1, 30, seed=4), 40))


def policy_actions(agent: NeuroFlow, n: int, *, deterministic: bool) -> np.ndarray:
    """Actions for one fixed state and hidden state: only the draws vary."""
    state = torch.zeros(1, agent.env.observation_space.shape[0])
    hidden = agent.initial_hidden(1)
    out = [agent.act(state, hidden, deterministic=deterministic)[0] for _ in range(n)]
    return torch.cat(out)[:, 0].numpy()


def test_a_pink_agent_explores_with_correlated_actions_and_acts_alike_when_deterministic():
    pink = NeuroFlow("MountainCarContinuous-v0", 8, 16, seed=0, exploration_noise="pink")
    white = NeuroFlow("MountainCarContinuous-v0", 8, 16, seed=0)
    assert pink.pink_noise is not None and white.pink_noise is None
    assert pink.pink_noise.horizon == 999  # the env's step limit
    assert lag_one_correlation(policy_actions(pink, 400, deterministic=False)) > 0.5
    assert abs(lag_one_correlation(policy_actions(white, 400, deterministic=False))) < 0.2
    # The same networks (same seed): deterministic actions ignore the noise.
    assert np.array_equal(
        policy_actions(pink, 3, deterministic=True), policy_actions(white, 3, deterministic=True)
    )


def test_exploration_noise_is_saved_and_a_resumed_run_draws_on_exactly(tmp_path):
    def agent() -> NeuroFlow:
        return NeuroFlow("Pendulum-v1", 8, 16, buffer_size=2_000, seed=3, exploration_noise="pink")

    def train(a: NeuroFlow, episodes: int) -> None:
        a.train(16, n_episodes=episodes, max_steps=60, warmup_steps=20, display_count=1_000)

    whole = agent()
    train(whole, 4)
    half = agent()
    train(half, 2)
    half.save(tmp_path / "half", buffer=True)
    resumed = NeuroFlow.load(tmp_path / "half", buffer=True)
    assert resumed.config.exploration_noise == "pink"
    train(resumed, 2)

    assert resumed.steps_done == whole.steps_done == 240
    # The stored actions after the warm-up are the pink draws: the same ones.
    assert torch.equal(resumed.buffer.storage, whole.buffer.storage)
    left, right = module_tensors(whole), module_tensors(resumed)
    for key in left:
        assert torch.equal(left[key], right[key]), key


def test_an_unknown_exploration_noise_is_refused():
    with pytest.raises(ValueError, match="exploration_noise must be one of 'white', 'pink'"):
        NeuroFlow("Pendulum-v1", 8, 16, exploration_noise="red")


def test_pink_categorical_draws_keep_the_policy_probabilities():
    head = NeuroFlow("MountainCar-v0", 4, 8, seed=0).head
    logits = torch.tensor([[0.0, 1.0, -1.0]]).expand(100_000, 3)
    torch.manual_seed(0)
    actions = head.act(logits, noise=torch.randn(100_000, 1))
    assert actions.shape == (100_000, 1) and actions.dtype == torch.int64
    frequencies = torch.bincount(actions[:, 0], minlength=3).double() / 100_000
    expected = torch.softmax(logits[0], dim=-1).double()
    assert torch.allclose(frequencies, expected, atol=0.01)
    # The draw is the noise's quantile of the policy: larger noise, a later action.
    quantiles = head.act(logits[:3], noise=torch.tensor([[-3.0], [0.0], [3.0]]))
    assert quantiles[:, 0].tolist() == [0, 1, 2]


def test_a_pink_discrete_agent_repeats_its_actions_more_than_white():
    def repeats(noise: str) -> float:
        agent = NeuroFlow("MountainCar-v0", 8, 16, seed=0, exploration_noise=noise)
        actions = policy_actions(agent, 2_000, deterministic=False)
        return float((actions[1:] == actions[:-1]).mean())

    pink, white = repeats("pink"), repeats("white")
    assert white == pytest.approx(1 / 3, abs=0.05)  # a near-uniform policy over 3 actions
    assert pink > white + 0.1


def test_mountain_car_continuous_has_a_pink_preset():
    preset = load_preset("MountainCarContinuous-v0")
    assert preset.agent["exploration_noise"] == "pink"
    assert preset.agent["critic_history"] == "own" and preset.train["sequence_length"] == 8
    agent = NeuroFlow("MountainCarContinuous-v0", 4, 8, buffer_size=100, **preset.agent)
    assert agent.pink_noise is not None and agent.critic_memory is not None
