"""Changing the algorithm by overriding a loss: which path runs, and what the change does.

The added terms' effects are checked on the gradients each optimiser steps with: a
behaviour-cloning term on the actor must add exactly its own gradient to the actor's
and leave the critics' and the temperature's alone; a penalty on the critics must
change the critics' gradients only.
"""

import copy

import pytest
import torch

from velora.callbacks import TrainCallback
from velora.models import NeuroFlow, handwritten_update, sac
from velora.models import optim as optim_module

BATCH = 32


class NeuroFlowBC(NeuroFlow):
    """SAC plus a pull of the policy towards the stored actions."""

    bc_weight = 0.7

    def actor_loss(self, batch, pi):
        return super().actor_loss(batch, pi) + self.bc_term(batch, pi)

    def bc_term(self, batch, pi):
        return self.bc_weight * (pi.action - batch.actions).square().mean()


class NeuroFlowConservative(NeuroFlow):
    """A CQL-like penalty: push down Q of every action, push up Q of the stored one."""

    def critic_loss(self, batch, next_pi):
        q = self.critic(self.head.critic_input(batch.states, None))
        penalty = (q.logsumexp(dim=-1, keepdim=True) - self.head.taken(q, batch.actions)).mean()
        return super().critic_loss(batch, next_pi) + penalty


def fill(agent: NeuroFlow, n: int = 200) -> None:
    gen = torch.Generator().manual_seed(0)
    obs, hidden = agent.actor.wiring.in_features, agent.actor.hidden_size

    def randn(width: int) -> torch.Tensor:
        return torch.randn(n, width, generator=gen)

    actions = agent.head.random_action(n, agent.device).float()
    dones = (torch.rand(n, 1, generator=gen) < 0.1).float()
    agent.buffer.add_batch(
        randn(obs), actions, randn(1), randn(obs), dones, randn(hidden).tanh(), randn(hidden).tanh()
    )


def step_gradients(agent: NeuroFlow, monkeypatch) -> dict[str, list[torch.Tensor]]:
    """One update on a fixed seed; the gradients each optimiser stepped with."""
    names = {id(agent.critic_optim): "critic", id(agent.actor_optim): "actor"}
    names[id(agent.entropy_optim)] = "alpha"
    captured: dict[str, list[torch.Tensor]] = {}
    real = optim_module.apply_gradients

    def spy(optimizer, grads):
        captured[names[id(optimizer)]] = [g.detach().clone() for g in grads]
        real(optimizer, grads)

    for module in (sac, handwritten_update):  # whichever path runs
        monkeypatch.setattr(module, "apply_gradients", spy)
    torch.manual_seed(123)
    agent.update(BATCH)
    return captured


def test_default_losses_take_the_hand_written_path_and_any_override_autograd():
    agent = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    assert agent.losses_are_default() and agent.uses_hand_written_gradients()
    assert not NeuroFlowBC("CartPole-v1", 8, 16, buffer_size=1000).uses_hand_written_gradients()
    agent.alpha_loss = lambda batch, pi: agent.log_alpha * 0.0  # on the instance
    assert not agent.losses_are_default() and not agent.uses_hand_written_gradients()
    plain = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    plain.hand_written_gradients = False
    assert plain.losses_are_default() and not plain.uses_hand_written_gradients()


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "Pendulum-v1"])
def test_a_behaviour_cloning_term_adds_its_own_gradient_to_the_actor_only(env_id, monkeypatch):
    base = NeuroFlow(env_id, 8, 16, buffer_size=1000, seed=0)
    base.hand_written_gradients = False  # same path as the override
    fill(base)
    bc = NeuroFlowBC(env_id, 8, 16, buffer_size=1000, seed=0)
    fill(bc)

    plain = step_gradients(base, monkeypatch)
    with_bc = step_gradients(bc, monkeypatch)

    # The term's gradient alone, on the same batch and noise, from a copy of the actor
    # as it was before the update.
    fresh = NeuroFlowBC(env_id, 8, 16, buffer_size=1000, seed=0)
    fill(fresh)
    torch.manual_seed(123)
    batch = fresh.buffer.sample(BATCH)
    fresh.head.expectation(torch.zeros(BATCH, fresh.head.actor_out))  # next_pi's noise draw
    output, _ = fresh.actor(batch.states, batch.hidden)
    term = fresh.bc_term(batch, fresh.head.expectation(output))
    expected = torch.autograd.grad(term, list(fresh.actor.parameters()))

    assert term.item() > 0
    for p, b in zip(plain["critic"], with_bc["critic"], strict=True):
        torch.testing.assert_close(p, b)
    torch.testing.assert_close(plain["alpha"], with_bc["alpha"])
    moved = 0.0
    for p, b, e in zip(plain["actor"], with_bc["actor"], expected, strict=True):
        torch.testing.assert_close(b - p, e, rtol=1e-4, atol=1e-6)
        moved += float(e.abs().sum())
    assert moved > 0


def test_a_critic_penalty_adds_its_own_gradient_to_the_critics(monkeypatch):
    base = NeuroFlow("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    fill(base)
    conservative = NeuroFlowConservative("CartPole-v1", 8, 16, buffer_size=1000, seed=0)
    fill(conservative)
    fresh = copy.deepcopy(conservative)
    plain = step_gradients(base, monkeypatch)  # the hand-written path
    penalised = step_gradients(conservative, monkeypatch)

    torch.manual_seed(123)
    batch = fresh.buffer.sample(BATCH)
    q = fresh.critic(fresh.head.critic_input(batch.states, None))
    penalty = (q.logsumexp(dim=-1, keepdim=True) - fresh.head.taken(q, batch.actions)).mean()
    expected = torch.autograd.grad(penalty, list(fresh.critic.parameters()))
    for p, c, e in zip(plain["critic"], penalised["critic"], expected, strict=True):
        assert e.abs().sum() > 0
        torch.testing.assert_close(c - p, e, rtol=1e-4, atol=1e-6)
    # The temperature's gradient depends on the policy alone.
    torch.testing.assert_close(plain["alpha"], penalised["alpha"])


def test_alpha_loss_sees_the_policy_detached(monkeypatch):
    """Whatever the temperature's loss does with `pi`, the actor's gradient is unchanged."""

    class LoudAlpha(NeuroFlow):
        def alpha_loss(self, batch, pi):
            assert not pi.log_prob.requires_grad
            return super().alpha_loss(batch, pi) + 10.0 * pi.log_prob.mean()

    base = NeuroFlow("InvertedPendulum-v5", 8, 16, buffer_size=1000, seed=0)
    base.hand_written_gradients = False
    fill(base)
    loud = LoudAlpha("InvertedPendulum-v5", 8, 16, buffer_size=1000, seed=0)
    fill(loud)
    plain, changed = step_gradients(base, monkeypatch), step_gradients(loud, monkeypatch)
    for p, c in zip(plain["actor"], changed["actor"], strict=True):
        torch.testing.assert_close(p, c)


class _CountSteps(TrainCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step(self, state) -> None:
        self.steps += 1


def test_an_override_trains_saves_loads_and_compiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = NeuroFlowBC("InvertedPendulum-v5", 8, 16, buffer_size=2000, seed=0)
    calls = []
    real_term = NeuroFlowBC.bc_term
    monkeypatch.setattr(
        NeuroFlowBC, "bc_term", lambda s, b, p: calls.append(1) or real_term(s, b, p)
    )
    counter = _CountSteps()
    summary = agent.train(16, n_episodes=8, warmup_steps=16, callbacks=[counter])
    assert counter.steps == summary.steps and len(calls) == summary.steps - 16 > 0
    monkeypatch.undo()

    agent.save(tmp_path / "bc", buffer=True)
    loaded = NeuroFlowBC.load(tmp_path / "bc", buffer=True)
    assert type(loaded) is NeuroFlowBC and not loaded.uses_hand_written_gradients()
    for a, b in zip(agent.actor.parameters(), loaded.actor.parameters(), strict=True):
        assert torch.equal(a, b)

    twin = copy.deepcopy(loaded)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    loaded.compile()
    torch.manual_seed(7)
    compiled_losses = torch.stack([loaded.update(16) for _ in range(3)])
    torch.manual_seed(7)
    eager_losses = torch.stack([twin.update(16) for _ in range(3)])
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-4, atol=1e-5)
    counters = torch._dynamo.utils.counters
    assert counters["stats"]["unique_graphs"] == 3 and not counters["graph_break"]


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "Pendulum-v1", "CartPole-v1"])
def test_hand_written_gradients_equal_the_autograd_losses(env_id, monkeypatch):
    """The fast path against the package's own losses, in float64 on one batch: every
    gradient each optimiser steps with, over two updates (Adam state, updated critics)."""
    agent = NeuroFlow(env_id, 8, 16, buffer_size=1000, seed=3, initial_alpha=0.3)
    for module in agent.state_modules().values():
        module.double()
    with torch.no_grad():
        agent.log_alpha.data = agent.log_alpha.data.double()
    agent.buffer.storage = agent.buffer.storage.double()
    fill(agent)
    grads = {}
    for hand_written in (True, False):
        twin = copy.deepcopy(agent)
        twin.hand_written_gradients = hand_written
        assert twin.uses_hand_written_gradients() == hand_written
        grads[hand_written] = [step_gradients(twin, monkeypatch) for _ in range(2)]
    for hand, auto in zip(grads[True], grads[False], strict=True):
        assert hand.keys() == auto.keys() == {"critic", "actor", "alpha"}
        for name in hand:
            for h, a in zip(hand[name], auto[name], strict=True):
                assert h.dtype == torch.float64
                torch.testing.assert_close(h, a, rtol=1e-9, atol=1e-12, msg=name)
