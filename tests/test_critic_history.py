"""Critics with history, for tasks where one observation is not enough:
`critic_history="actor_hidden"` shows the critics the actor's hidden state beside each
observation, `"own"` the summary of a memory of their own (its training through time is
tested in `test_sequence_replay`)."""

import pytest
import torch

from velora.buffer import Batch
from velora.models import NeuroFlow


def trained(env_id: str, db_path, **kwargs) -> NeuroFlow:
    agent = NeuroFlow(env_id, 8, 16, buffer_size=2000, seed=1, **kwargs)
    agent.train(16, n_episodes=3, warmup_steps=64, db_path=str(db_path))
    return agent


@pytest.mark.parametrize(("env_id", "action_width"), [("CartPole-v1", 0), ("Pendulum-v1", 1)])
def test_the_critics_see_the_observation_and_the_actors_hidden_state(env_id, action_width):
    plain = NeuroFlow(env_id, 8, 16, buffer_size=100, seed=0)
    history = NeuroFlow(env_id, 8, 16, buffer_size=100, seed=0, critic_history="actor_hidden")
    obs = plain.actor.wiring.in_features
    assert plain.critic.wirings[0].in_features == obs + action_width
    assert history.critic.wirings[0].in_features == obs + plain.actor.hidden_size + action_width
    assert history.config.critic_history == "actor_hidden" and plain.config.critic_history == "none"
    # The hand-written gradients know only observation-only critics.
    assert plain.uses_hand_written_gradients() and not history.uses_hand_written_gradients()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_the_critic_loss_depends_on_the_hidden_state_only_with_history(env_id, tmp_path):
    for critic_history, depends in (("none", False), ("actor_hidden", True)):
        agent = trained(env_id, tmp_path / f"{critic_history}.db", critic_history=critic_history)
        torch.manual_seed(0)
        batch = agent.buffer.sample(32)
        shuffled = batch._replace(
            hidden=batch.hidden.flip(0), next_hidden=batch.next_hidden.flip(0)
        )
        losses = []
        for b in (batch, shuffled):
            _, next_output = agent.policy_outputs(batch)  # the same actor outputs
            torch.manual_seed(1)
            next_pi = agent.head.expectation(next_output)
            losses.append(agent.critic_loss(agent.critic_view(b), next_pi))
        assert (not torch.equal(*losses)) is depends, critic_history
        view = agent.critic_view(batch)
        if depends:
            assert torch.equal(view.states, torch.cat((batch.states, batch.hidden), -1))
            assert torch.equal(
                view.next_states, torch.cat((batch.next_states, batch.next_hidden), -1)
            )
        else:
            assert view is batch


def test_an_update_steps_the_critics_on_what_they_see(tmp_path):
    """The update's critic loss is the loss of the batch's critic view."""
    agent = trained("Pendulum-v1", tmp_path / "m.db", critic_history="actor_hidden")
    torch.manual_seed(4)
    batch = agent.buffer.sample(32)
    output, next_output = agent.policy_outputs(batch)
    torch.manual_seed(5)  # the critic stage's policy noise comes first
    with torch.no_grad():
        expected = agent.critic_loss(agent.critic_view(batch), agent.head.expectation(next_output))
    before = [p.detach().clone() for p in agent.critic.parameters()]
    torch.manual_seed(5)
    losses = agent.autograd_update(batch, (output, next_output))
    torch.testing.assert_close(losses[1], expected)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters(), strict=True)
    )


@pytest.mark.parametrize("sequence_length", [1, 4])
def test_history_aware_critics_train_and_reload(sequence_length, tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=2000, seed=3, critic_history="actor_hidden")
    agent.train(
        16,
        n_episodes=4,
        warmup_steps=64,
        sequence_length=sequence_length,
        burn_in=sequence_length // 4,
        db_path=str(tmp_path / "m.db"),
        display_count=100,
    )
    agent.save(tmp_path / "agent")
    loaded = NeuroFlow.load(tmp_path / "agent")
    assert loaded.critic_history == "actor_hidden"
    view = agent.critic_view(agent.buffer.sample(8))
    torch.testing.assert_close(loaded.critic(view.states), agent.critic(view.states))


def test_an_unknown_critic_history_is_refused():
    with pytest.raises(
        ValueError, match=r"critic_history must be one of 'none', 'actor_hidden', 'own'"
    ):
        NeuroFlow("CartPole-v1", 8, 16, buffer_size=100, critic_history="critic")


@pytest.mark.parametrize(("env_id", "action_width"), [("CartPole-v1", 0), ("Pendulum-v1", 1)])
def test_critics_with_their_own_memory_are_built_saved_and_optimised(env_id, action_width):
    agent = NeuroFlow(env_id, 8, 16, buffer_size=100, seed=0, critic_history="own")
    obs = agent.actor.wiring.in_features
    memory, target = agent.critic_memory, agent.critic_memory_target
    # A summary as wide as an observation joins each observation.
    assert memory.wiring.in_features == obs and memory.wiring.out_features == obs
    assert agent.critic.wirings[0].in_features == 2 * obs + action_width
    for a, b in zip(memory.parameters(), target.parameters(), strict=True):
        assert torch.equal(a, b) and not b.requires_grad
    # The critic optimiser trains the memory; saves hold it and its target.
    optimised = {id(p) for group in agent.critic_optim.param_groups for p in group["params"]}
    assert {id(p) for p in memory.parameters()} <= optimised
    assert {id(p) for p in target.parameters()}.isdisjoint(optimised)
    assert agent.state_modules()["critic_memory"] is memory
    assert agent.state_modules()["critic_memory_target"] is target
    critic_side = sum(p.numel() for m in (agent.critic, memory) for p in m.parameters())
    assert agent.config.critic_params == critic_side
    assert agent.total_params == critic_side + sum(p.numel() for p in agent.actor.parameters())
    assert not agent.uses_hand_written_gradients()
    assert NeuroFlow(env_id, 8, 16, buffer_size=100).critic_memory is None


def test_own_memory_needs_windows_and_says_so_before_training(tmp_path):
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=500, seed=0, critic_history="own")
    with pytest.raises(ValueError, match=r"sequence_length > 1 \(e\.g\. sequence_length=8"):
        agent.train(16, n_episodes=2, db_path=str(tmp_path / "m.db"))
    assert agent.progress.episodes == 0 and not (tmp_path / "m.db").exists()
    with pytest.raises(ValueError, match="needs windows"):
        agent.critic_view(Batch(*(torch.zeros(1, width) for width in agent.buffer.widths)))
    with pytest.raises(ValueError, match="sequence_length > 1"):
        agent.update(1)
