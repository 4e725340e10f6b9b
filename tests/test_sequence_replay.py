"""Sequence replay: windows of consecutive transitions that never cross an episode's
end, burn-in without gradient, backpropagation through time equal to an unrolled
reference, and save/load/resume that still hold."""

import pytest
import torch

from velora.buffer import Batch, ReplayBuffer, Windows
from velora.models import NeuroFlow

OBS, HIDDEN = 3, 2


def episode_rows(episode: int, step: int) -> dict:
    """A transition that says which episode and step it is (state = [episode, step, 0])."""
    state = torch.tensor([float(episode), float(step), 0.0])
    return {
        "state": state,
        "action": torch.tensor([float(step)]),
        "reward": 1.0,
        "next_state": state + torch.tensor([0.0, 1.0, 0.0]),
        "done": False,
        "hidden": torch.full((HIDDEN,), float(step)),
        "next_hidden": torch.full((HIDDEN,), float(step + 1)),
    }


def fill_single(buffer: ReplayBuffer, lengths: list[int]) -> None:
    for episode, length in enumerate(lengths):
        for step in range(length):
            buffer.add(**episode_rows(episode, step), episode_step=step)


def fill_vector(buffer: ReplayBuffer, lanes: list[list[int]]) -> None:
    """Sub-env `i` plays the episodes of `lanes[i]`, all stepped together; episode
    numbers are `100 * lane + k`, so they tell lanes apart."""
    n = len(lanes)
    position = [(0, 0)] * n  # (episode index in lane, step)
    for _ in range(max(sum(lane) for lane in lanes)):
        rows = []
        for i, lane in enumerate(lanes):
            k, step = position[i]
            if k >= len(lane):
                k, step = len(lane) - 1, lane[-1]  # a lane that is done keeps stepping
            rows.append((100 * i + k, step))
            position[i] = (k, step + 1) if step + 1 < lane[min(k, len(lane) - 1)] else (k + 1, 0)
        fields = [episode_rows(e, s) for e, s in rows]
        buffer.add_batch(
            *(torch.stack([torch.as_tensor(f[key]).reshape(-1) for f in fields]) for key in (
                "state", "action", "reward", "next_state", "done", "hidden", "next_hidden"
            )),
            episode_steps=torch.tensor([s for _, s in rows]),
        )  # fmt: skip


def check_windows(windows: Windows, length: int) -> None:
    """Every valid position continues its window's episode one step on, and the valid
    positions are a prefix of the window."""
    states, valid = windows.batch.states, windows.valid
    assert valid[:, 0].all()
    episode, first = states[:, 0, 0], states[:, 0, 1]
    for t in range(length):
        follows = (states[:, t, 0] == episode) & (states[:, t, 1] == first + t)
        assert not (valid[:, t] & ~follows).any()
        if t > 0:
            assert not (valid[:, t] & ~valid[:, t - 1]).any()
    assert torch.equal(windows.batch.hidden[:, :, 0], windows.batch.states[:, :, 1])


def test_single_env_windows_stay_in_their_episode():
    buffer = ReplayBuffer(500, OBS, 1, HIDDEN)
    lengths = [3, 7, 1, 5, 12, 2, 9, 4]
    fill_single(buffer, lengths)
    torch.manual_seed(0)
    windows = buffer.sample_windows(40, 6)
    check_windows(windows, 6)
    states, valid = windows.batch.states, windows.valid
    # A window is as long as its episode has steps left, capped at 6.
    left = torch.tensor([lengths[int(e)] for e in states[:, 0, 0]]) - states[:, 0, 1]
    assert torch.equal(valid.sum(dim=1), left.clamp(max=6).long())


def test_vector_env_windows_follow_their_own_sub_env():
    buffer = ReplayBuffer(600, OBS, 1, HIDDEN)
    fill_vector(buffer, [[4, 6, 5], [10, 5], [2, 2, 2, 2, 2, 5]])
    torch.manual_seed(1)
    windows = buffer.sample_windows(45, 5)
    check_windows(windows, 5)
    assert windows.valid.sum() > 45 * 2  # most windows run several steps


def test_windows_never_reach_into_overwritten_transitions():
    buffer = ReplayBuffer(20, OBS, 1, HIDDEN)
    fill_single(buffer, [15, 15, 9])  # the ring wrapped: the oldest episode is half gone
    torch.manual_seed(2)
    windows = buffer.sample_windows(20, 8)
    check_windows(windows, 8)
    newest = (2, 8)  # the last stored transition: no window goes past it
    at_newest = (windows.batch.states[..., 0] == newest[0]) & (
        windows.batch.states[..., 1] == newest[1]
    )
    later = torch.cumsum(at_newest.int(), dim=1) - at_newest.int()
    assert not (windows.valid & (later > 0)).any()


def test_windows_survive_save_and_load():
    buffer = ReplayBuffer(40, OBS, 1, HIDDEN)
    fill_vector(buffer, [[6, 9], [3, 3, 3, 6]])
    copy = ReplayBuffer(40, OBS, 1, HIDDEN)
    copy.load_state_dict(buffer.state_dict())
    torch.manual_seed(3)
    a = buffer.sample_windows(24, 4)
    torch.manual_seed(3)
    b = copy.sample_windows(24, 4)
    check_windows(b, 4)
    for x, y in zip(a.batch.transitions(), b.batch.transitions(), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.valid, b.valid)


# --------------------------------------------------------------------------------------
# The update through time
# --------------------------------------------------------------------------------------


def double_agent(
    tmp_path, critic_history: str = "none", *, double: bool = True
) -> tuple[NeuroFlow, Windows]:
    """A CartPole agent with some experience, its networks in float64 (float32 with
    `double=False`, for tests that step the optimisers), and windows."""
    agent = NeuroFlow(
        "CartPole-v1", 10, 16, buffer_size=2000, seed=0, critic_history=critic_history
    )
    # Critics with their own memory train on windows only.
    windows = {"sequence_length": 4, "burn_in": 1} if critic_history == "own" else {}
    agent.train(16, n_episodes=6, warmup_steps=400, db_path=str(tmp_path / "m.db"), **windows)
    torch.manual_seed(5)
    sampled = agent.buffer.sample_windows(12, 6)
    if not double:
        return agent, sampled
    for module in agent.state_modules().values():
        module.double()
    agent.log_alpha = agent.log_alpha.detach().double().requires_grad_(True)
    batch = Batch(*(field.double() for field in sampled.batch.transitions()))
    return agent, Windows(batch, sampled.valid)


def assert_gradients_match(ours: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def assert_reaches_back_through_time(network, gradients: list[torch.Tensor]) -> None:
    """The recurrent weights of `network` (a liquid NCP) get some of the gradient."""
    recurrent = network.command.heads.weight
    index = next(i for i, p in enumerate(network.parameters()) if p is recurrent)
    assert gradients[index][:, -network.hidden_size :].abs().sum() > 0


def reference_unroll(agent: NeuroFlow, windows: Windows, burn_in: int, detach: bool = True):
    """Window by window, step by step, through the actor's modules."""
    seq, valid = windows.batch, windows.valid
    rows, outputs, next_outputs, hiddens = [], [], [], []
    for b in range(valid.shape[0]):
        hidden = seq.hidden[b, :1]
        for t in range(valid.shape[1]):
            if not valid[b, t]:
                break
            fed_in = hidden
            output, hidden = agent.actor.forward_modules(seq.states[b, t : t + 1], hidden)
            if t < burn_in:
                if detach:
                    hidden = hidden.detach()
                continue
            outputs.append(output)
            hiddens.append((fed_in.detach(), hidden.detach()))
            with torch.no_grad():
                next_outputs.append(
                    agent.actor.forward_modules(seq.next_states[b, t : t + 1], hidden)[0]
                )
            rows.append((b, t))
    index = torch.tensor([b * valid.shape[1] + t for b, t in rows])
    flat = Batch(*(field.flatten(0, 1).index_select(0, index) for field in seq.transitions()))
    # The rows carry the hidden states the unroll fed in and reached, not the stored ones.
    flat = flat._replace(
        hidden=torch.cat([h for h, _ in hiddens]), next_hidden=torch.cat([h for _, h in hiddens])
    )
    return flat, torch.cat(outputs), torch.cat(next_outputs)


def actor_gradients(agent: NeuroFlow, batch: Batch, output: torch.Tensor) -> list[torch.Tensor]:
    loss = agent.actor_loss(batch, agent.head.expectation(output))
    return list(torch.autograd.grad(loss, list(agent.actor.parameters()), allow_unused=True))


@pytest.mark.parametrize("burn_in", [0, 2])
def test_gradients_through_time_equal_an_unrolled_reference(tmp_path, burn_in):
    agent, windows = double_agent(tmp_path)
    rows, output, next_output = agent.unroll(windows, burn_in)
    ref_rows, ref_output, ref_next = reference_unroll(agent, windows, burn_in)
    # Every position after the burn-in is a row (fixed shapes); the valid ones weigh 1.
    assert output.shape[0] == rows.states.shape[0] == 12 * (6 - burn_in)
    assert torch.equal(rows.weights, windows.valid[:, burn_in:].flatten().double())
    kept = rows.weights.nonzero().squeeze(1)
    for name, a, b in zip(Batch._fields, rows.transitions(), ref_rows.transitions(), strict=False):
        torch.testing.assert_close(a.index_select(0, kept), b, rtol=1e-12, atol=1e-12, msg=name)
    torch.testing.assert_close(output.index_select(0, kept), ref_output, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(next_output.index_select(0, kept), ref_next, rtol=1e-12, atol=1e-12)
    assert not next_output.requires_grad
    ours, reference = (
        actor_gradients(agent, rows, output),
        actor_gradients(agent, ref_rows, ref_output),
    )
    assert_gradients_match(ours, reference)
    assert_reaches_back_through_time(agent.actor, ours)


def test_burn_in_steps_get_no_gradient(tmp_path):
    agent, windows = double_agent(tmp_path)
    rows, output, _ = agent.unroll(windows, 3)
    ours = actor_gradients(agent, rows, output)
    ref_rows, through, _ = reference_unroll(agent, windows, 3, detach=False)
    _, detached, _ = reference_unroll(agent, windows, 3, detach=True)
    with_burn_in_gradient = actor_gradients(agent, ref_rows, through)
    without = actor_gradients(agent, ref_rows, detached)
    assert_gradients_match(ours, without)
    assert any(
        not torch.allclose(a, b, rtol=1e-6, atol=1e-9)
        for a, b in zip(ours, with_burn_in_gradient, strict=True)
    )


# --------------------------------------------------------------------------------------
# Critics with a memory of their own (`critic_history="own"`)
# --------------------------------------------------------------------------------------


def reference_memory(agent: NeuroFlow, windows: Windows, burn_in: int, detach: bool = True):
    """Window by window, step by step from a zero state: the memory's summaries of the
    valid states after the burn-in, and the target memory's of their next states."""
    seq, valid = windows.batch, windows.valid
    summaries, next_summaries = [], []
    memory, target = agent.critic_memory, agent.critic_memory_target
    for b in range(valid.shape[0]):
        hidden = target_hidden = memory.initial_hidden(1)
        for t in range(valid.shape[1]):
            if not valid[b, t]:
                break
            summary, hidden = memory.forward_modules(seq.states[b, t : t + 1], hidden)
            with torch.no_grad():
                _, target_hidden = target.forward_modules(seq.states[b, t : t + 1], target_hidden)
            if t < burn_in:
                if detach:
                    hidden = hidden.detach()
                continue
            summaries.append(summary)
            with torch.no_grad():
                next_summaries.append(
                    target.forward_modules(seq.next_states[b, t : t + 1], target_hidden)[0]
                )
    return torch.cat(summaries), torch.cat(next_summaries)


def memory_gradients(agent: NeuroFlow, rows: Batch, next_output, memory) -> list[torch.Tensor]:
    """The critic loss's gradients w.r.t. the memory (exact: CartPole's expectation
    over the next policy is a sum, with no sampled noise)."""
    loss = agent.critic_loss(agent.critic_view(rows, memory), agent.head.expectation(next_output))
    return list(torch.autograd.grad(loss, list(agent.critic_memory.parameters())))


@pytest.mark.parametrize("burn_in", [0, 2])
def test_the_critics_memory_trains_through_time_like_an_unrolled_reference(tmp_path, burn_in):
    agent, windows = double_agent(tmp_path, "own")
    rows, _, next_output = agent.unroll(windows, burn_in)
    summary, next_summary = agent.remember(windows, burn_in)
    ref_rows, _, ref_next = reference_unroll(agent, windows, burn_in)
    ref_summary, ref_next_summary = reference_memory(agent, windows, burn_in)
    kept = rows.weights.nonzero().squeeze(1)
    assert summary.shape == next_summary.shape == (12 * (6 - burn_in), 4)
    torch.testing.assert_close(summary.index_select(0, kept), ref_summary, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        next_summary.index_select(0, kept), ref_next_summary, rtol=1e-12, atol=1e-12
    )
    assert summary.requires_grad and not next_summary.requires_grad
    ours = memory_gradients(agent, rows, next_output, (summary, next_summary))
    reference = memory_gradients(agent, ref_rows, ref_next, (ref_summary, ref_next_summary))
    assert_gradients_match(ours, reference)
    assert_reaches_back_through_time(agent.critic_memory, ours)


def test_the_critics_memory_gets_no_gradient_from_burn_in_or_the_actor(tmp_path):
    agent, windows = double_agent(tmp_path, "own")
    rows, output, next_output = agent.unroll(windows, 3)
    memory = agent.remember(windows, 3)
    ours = memory_gradients(agent, rows, next_output, memory)
    ref_rows, _, ref_next = reference_unroll(agent, windows, 3)
    without = memory_gradients(agent, ref_rows, ref_next, reference_memory(agent, windows, 3))
    through = memory_gradients(
        agent, ref_rows, ref_next, reference_memory(agent, windows, 3, detach=False)
    )
    assert_gradients_match(ours, without)
    assert any(
        not torch.allclose(a, b, rtol=1e-6, atol=1e-9) for a, b in zip(ours, through, strict=True)
    )


def test_an_update_trains_the_critics_memory_and_averages_its_target(tmp_path):
    agent, windows = double_agent(tmp_path, "own", double=False)
    saved = {
        name: {key: value.clone() for key, value in module.state_dict().items()}
        for name, module in agent.state_modules().items()
    }
    rows, output, next_output = agent.unroll(windows, 1)
    agent.autograd_update(rows, (output, next_output), agent.remember(windows, 1))
    memory, target = (
        {name: p.detach() for name, p in m.named_parameters()}
        for m in (agent.critic_memory, agent.critic_memory_target)
    )
    old_memory, old_target = saved["critic_memory"], saved["critic_memory_target"]
    for name, online in memory.items():
        assert not torch.equal(online, old_memory[name]), name  # every memory weight learns
        expected = old_target[name] + agent.tau * (online - old_target[name])
        torch.testing.assert_close(target[name], expected)


@pytest.mark.parametrize(
    ("env_id", "critic_history", "n_steps"),
    [
        ("CartPole-v1", "none", 1),
        ("InvertedPendulum-v5", "none", 1),
        ("Pendulum-v1", "actor_hidden", 1),
        ("CartPole-v1", "own", 1),
        ("CartPole-v1", "none", 3),  # n-step windows look ahead
    ],
)
def test_resume_with_sequences_is_exact(env_id, critic_history, n_steps, tmp_path):
    settings = {"sequence_length": 4, "burn_in": 1, "db_path": str(tmp_path / "m.db")}

    def agent() -> NeuroFlow:
        return NeuroFlow(
            env_id,
            8,
            16,
            buffer_size=3000,
            seed=2,
            normalize_obs=True,
            critic_history=critic_history,
            n_steps=n_steps,
        )

    whole = agent()
    whole.train(16, n_episodes=8, warmup_steps=32, display_count=100, **settings)
    first = agent()
    first.train(16, n_episodes=4, warmup_steps=32, display_count=100, **settings)
    first.save(tmp_path / "half", buffer=True)
    resumed = NeuroFlow.load(tmp_path / "half", buffer=True)
    resumed.train(16, n_episodes=4, warmup_steps=32, display_count=100, **settings)

    assert resumed.n_steps == n_steps
    assert resumed.steps_done == whole.steps_done
    for name, module in whole.state_modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.state_modules()[name].state_dict()[key]), key
    for key, value in whole.buffer.state_dict().items():
        assert torch.equal(value, resumed.buffer.state_dict()[key]), key


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sequence_length": 4, "burn_in": 4}, r"burn_in \(4\) must be smaller"),
        ({"sequence_length": 0}, "sequence_length must be an integer >= 1"),
        ({"burn_in": 2}, r"burn_in \(2\) needs sequence_length > 1"),
        ({"sequence_length": 4, "burn_in": -1}, "burn_in must be an integer >= 0"),
        ({"sequence_length": 600}, r"sequence_length \(600\) windows .* do not fit the buffer"),
    ],
)
def test_bad_sequence_settings_fail_before_training(settings, message, tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=500, seed=0)
    with pytest.raises(ValueError, match=message):
        agent.train(16, n_episodes=2, db_path=str(tmp_path / "m.db"), **settings)
    assert agent.progress.episodes == 0 and not (tmp_path / "m.db").exists()


def test_the_loop_records_each_episode_and_its_steps(tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=0)
    summary = agent.train(16, n_episodes=3, db_path=str(tmp_path / "m.db"))
    n = len(agent.buffer)
    ids, steps = agent.buffer.episode_ids[:n], agent.buffer.episode_steps[:n]
    assert ids.unique().tolist() == [0, 1, 2] and n == summary.steps
    for episode in range(3):
        mine = steps[ids == episode]
        assert torch.equal(mine, torch.arange(len(mine), dtype=mine.dtype))
    # sequence_length=1 still samples single transitions with the same draws as before.
    torch.manual_seed(9)
    indices = torch.randint(0, n, (16,))
    torch.manual_seed(9)
    assert torch.equal(agent.buffer.sample(16).states, agent.buffer.storage[indices, :4])
