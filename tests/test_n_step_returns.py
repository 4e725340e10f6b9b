"""n-step returns: rows that sum the rewards of up to n steps of their episode and
bootstrap with gamma^steps, never reaching past an episode's end, from single steps
and at every row of replayed windows; the agent setting that asks for them, saved with
it."""

import pytest
import torch
from test_sequence_replay import (
    assert_gradients_match,
    double_agent,
    fill_vector,
    reference_memory,
    reference_unroll,
)

from velora.buffer import Batch, ReplayBuffer, Windows
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


def reference_look_ahead(agent: NeuroFlow, windows, burn_in: int, n_steps: int):
    """Window by window, position by position: each trained row's n-step return from
    the unrolled reference's rows, and what it bootstraps from (`n_steps` ahead at most,
    never past the episode's end); the memory's summaries likewise."""
    flat, output, next_output = reference_unroll(agent, windows, burn_in)
    summary, next_summary = reference_memory(agent, windows, burn_in)
    valid = windows.valid
    row = {}  # (window, position) -> the reference's row
    for b in range(valid.shape[0]):
        for t in range(burn_in, valid.shape[1]):
            if valid[b, t]:
                row[b, t] = len(row)
    first, last, rewards, discounts = [], [], [], []
    for (b, t), i in row.items():
        if t >= valid.shape[1] - n_steps + 1:
            continue  # only looked ahead to
        steps = next(m for m in range(n_steps, 0, -1) if (b, t + m - 1) in row)
        first.append(i)
        last.append(row[b, t + steps - 1])
        rewards.append(sum(agent.gamma**k * flat.rewards[row[b, t + k]] for k in range(steps)))
        discounts.append(torch.full((1,), agent.gamma**steps, dtype=flat.rewards.dtype))
    first, last = torch.tensor(first), torch.tensor(last)
    batch = Batch(
        flat.states[first],
        flat.actions[first],
        torch.stack(rewards),
        flat.next_states[last],
        flat.dones[last],
        flat.hidden[first],
        flat.next_hidden[last],
        discounts=torch.stack(discounts),
    )
    return batch, (output[first], next_output[last]), (summary[first], next_summary[last])


@pytest.mark.parametrize("burn_in", [0, 2])
def test_windows_look_ahead_like_an_unrolled_reference(tmp_path, burn_in):
    """Sequence replay with n-step returns: the rows, the actor's outputs and the
    critics' memory of every trained position, and the critic loss's gradients."""
    agent, _ = double_agent(tmp_path, "own")
    agent.n_steps = 3
    torch.manual_seed(3)  # enough windows of 6 that some meet an episode's end
    sampled = agent.buffer.sample_windows(60, 6)
    windows = Windows(Batch(*(f.double() for f in sampled.batch.transitions())), sampled.valid)
    rows, output, next_output = agent.unroll(windows, burn_in)
    memory = agent.remember(windows, burn_in)
    rows, outputs, memory = agent.look_ahead(rows, (output, next_output), memory, 60)
    ref_rows, ref_outputs, ref_memory = reference_look_ahead(agent, windows, burn_in, 3)

    assert rows.states.shape[0] == 60 * (6 - 2 - burn_in)  # the last 2 only look ahead
    kept = rows.weights.nonzero().squeeze(1)
    assert len(kept) == ref_rows.states.shape[0] > 0
    for name, ours, reference in zip(Batch._fields, rows, ref_rows, strict=True):
        if reference is not None:
            torch.testing.assert_close(ours[kept], reference, rtol=1e-12, atol=1e-12, msg=name)
    for ours, reference in zip((*outputs, *memory), (*ref_outputs, *ref_memory), strict=True):
        torch.testing.assert_close(ours[kept], reference, rtol=1e-12, atol=1e-12)
    # Rows that bootstrap early (an episode's end) are among them, so the test tells.
    assert (ref_rows.discounts > agent.gamma**3 + 1e-9).any()  # fewer steps: less discount
    assert ((ref_rows.discounts - agent.gamma**3).abs() < 1e-9).any()

    def critic_gradients(batch, outputs, memory) -> list[torch.Tensor]:
        view = agent.critic_view(batch, memory)
        loss = agent.critic_loss(view, agent.head.expectation(outputs[1]))
        return list(torch.autograd.grad(loss, agent.critic_parameters()))

    assert_gradients_match(
        critic_gradients(rows, outputs, memory), critic_gradients(ref_rows, ref_outputs, ref_memory)
    )


def test_n_step_windows_that_do_not_fit_the_buffer_fail_before_training(tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=500, n_steps=3)
    with pytest.raises(ValueError, match=r"n_steps - 1 \(2\).*501 do not fit the buffer"):
        agent.train(16, n_episodes=1, sequence_length=499, db_path=tmp_path / "m.db")
    assert agent.steps_done == 0 and not (tmp_path / "m.db").exists()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_presets_of_discrete_tasks_use_three_step_returns(env_id):
    preset = load_preset(env_id)
    assert preset.agent["n_steps"] == 3
    assert NeuroFlow(env_id, 4, 8, buffer_size=100, **preset.agent).n_steps == 3
