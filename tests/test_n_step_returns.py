"""n-step returns: rows that sum the rewards of up to n steps of their episode and
bootstrap with gamma^steps, never reaching past an episode's end; the agent setting
that asks for them, saved with it and refused where it cannot apply."""

import pytest
import torch
from test_sequence_replay import fill_vector

from velora.buffer import Batch, ReplayBuffer
from velora.models import NeuroFlow
from velora.presets import load_preset

GAMMA = 0.9


def fill_episodes(buffer: ReplayBuffer, episodes: list[tuple[int, bool]]) -> None:
    """Episodes of (length, terminal); state = [episode, step], reward = 10 * episode +
    step + 1 (each reward tells its transition apart), hidden = step."""
    for episode, (length, terminal) in enumerate(episodes):
        for step in range(length):
            state = torch.tensor([float(episode), float(step)])
            buffer.add(
                state,
                torch.tensor([0.0]),
                10.0 * episode + step + 1,
                state + torch.tensor([0.0, 1.0]),
                terminal and step == length - 1,
                torch.full((1,), float(step)),
                torch.full((1,), float(step + 1)),
                episode_step=step,
            )


def expected_row(episodes: list[tuple[int, bool]], episode: int, step: int, n: int) -> dict:
    """What an n-step row that starts at (episode, step) must hold."""
    length, terminal = episodes[episode]
    steps = min(n, length - step)
    last = step + steps - 1
    return {
        "reward": sum(GAMMA**k * (10.0 * episode + step + k + 1) for k in range(steps)),
        "next_state": [float(episode), float(last + 1)],
        "done": float(terminal and last == length - 1),
        "next_hidden": float(last + 1),
        "discount": GAMMA**steps,
    }


@pytest.mark.parametrize("n_steps", [1, 3])
def test_n_step_rows_sum_rewards_within_their_episode(n_steps):
    # A terminal episode, a cut one (not terminal), and one still running at the end.
    episodes = [(5, True), (4, False), (2, True), (6, False)]
    buffer = ReplayBuffer(100, 2, 1, 1)
    fill_episodes(buffer, episodes)
    torch.manual_seed(0)
    rows = len(buffer)
    batches = [buffer.sample_n_step(rows, n_steps, GAMMA) for _ in range(15)]
    batch = Batch(
        *(None if fields[0] is None else torch.cat(fields) for fields in zip(*batches, strict=True))
    )
    assert batch.rewards.shape == batch.dones.shape == batch.discounts.shape == (15 * rows, 1)
    seen = set()
    for i in range(15 * rows):
        episode, step = (int(v) for v in batch.states[i])
        seen.add((episode, step))
        want = expected_row(episodes, episode, step, n_steps)
        assert batch.rewards[i, 0].item() == pytest.approx(want["reward"], rel=1e-6)
        assert batch.next_states[i].tolist() == want["next_state"]
        assert batch.dones[i, 0].item() == want["done"]
        assert batch.hidden[i, 0].item() == step  # the first transition's
        assert batch.next_hidden[i, 0].item() == want["next_hidden"]
        assert batch.discounts[i, 0].item() == pytest.approx(want["discount"], rel=1e-6)
    assert len(seen) == sum(length for length, _ in episodes)  # every start was drawn


def test_n_step_rows_follow_their_own_sub_env():
    """Vector envs interleave their transitions: a row's steps lie a stride apart."""
    buffer = ReplayBuffer(200, 3, 1, 2)
    fill_vector(buffer, [[4, 6], [7, 3]])  # state = [episode, step, 0]; reward 1
    torch.manual_seed(1)
    batch = buffer.sample_n_step(len(buffer), 3, GAMMA)
    lengths = {0: 4, 1: 6, 100: 7, 101: 3}  # episode 100 * lane + k
    for i in range(len(buffer)):
        episode, step = int(batch.states[i, 0]), int(batch.states[i, 1])
        steps = min(3, lengths[episode] - step)
        assert batch.next_states[i, :2].tolist() == [episode, step + steps]
        assert batch.rewards[i, 0].item() == pytest.approx(sum(GAMMA**k for k in range(steps)))


def test_an_n_step_agent_trains_and_keeps_its_setting_through_save_and_load(tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2_000, seed=0, n_steps=3)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.train(32, n_episodes=6, warmup_steps=40, display_count=100, db_path=tmp_path / "m.db")
    assert agent.steps_done > 40
    after = agent.critic.parameters()
    assert any(not torch.equal(p, q) for p, q in zip(after, before, strict=True))
    agent.save(tmp_path / "agent")
    loaded = NeuroFlow.load(tmp_path / "agent")
    assert loaded.n_steps == loaded.config.n_steps == 3


@pytest.mark.parametrize("value", [0, -2, 2.5])
def test_a_bad_n_steps_is_refused(value):
    with pytest.raises(ValueError, match="n_steps"):
        NeuroFlow("CartPole-v1", 8, 16, buffer_size=100, n_steps=value)


def test_n_steps_with_sequence_replay_fails_before_training(tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=500, n_steps=3)
    with pytest.raises(ValueError, match="n_steps > 1 sums rewards.*sequence_length=1"):
        agent.train(16, n_episodes=1, sequence_length=4, db_path=tmp_path / "m.db")
    assert agent.steps_done == 0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_presets_of_discrete_tasks_use_three_step_returns(env_id):
    preset = load_preset(env_id)
    assert preset.agent["n_steps"] == 3
    assert NeuroFlow(env_id, 4, 8, buffer_size=100, **preset.agent).n_steps == 3
