"""`NeuroFlow.update` against a plain reference implementation of the SAC equations.

Both of the update's paths are under test: the autograd losses of `velora.models.sac`
(the package's statement of the algorithm) and the hand-written gradients that run in
their place by default. These tests pin what they compute, not how. On a fixed batch,
with the policy noise fixed, every loss, every gradient an optimiser steps with, and every parameter
afterwards must match a straightforward float64 SAC written here: critic step, then
the actor on the updated critics, then the temperature, then the Polyak target update
(CleanRL's order). The tests only touch `update()`'s stable interfaces: `buffer.sample`,
`head.noise_like`, the three optimisers' `step`, and the modules' parameters.
"""

import copy
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from velora.buffer import Batch
from velora.models import NeuroFlow

BATCH_SIZE = 32
# Not the defaults, and all different, so a swapped or hard-coded value shows.
HYPER = {
    "actor_lr": 1e-3,
    "critic_lr": 2e-3,
    "alpha_lr": 3e-3,
    "initial_alpha": 0.5,
    "gamma": 0.9,
    "tau": 0.05,
}
# The float32 update against the float64 reference, for losses, gradients and
# parameters alike; the current update stays within about a third of it.
TOL = {"rtol": 1e-5, "atol": 1e-6}
# Only guards log(0) in the naive tanh correction; negligible in float64 for |u| < 10.
TANH_EPS = 1e-12


def fixed_noise(mean: torch.Tensor) -> torch.Tensor:
    """Roughly unit-variance noise that depends only on each entry of `mean`.

    However the update batches or orders its forward passes, the same actor output
    gets the same noise, and the reference can recompute it.
    """
    return math.sqrt(2.0) * torch.sin(37.0 * mean.detach() + 1.3)


def make_agent(env_id: str, seed: int, hand_written: bool = True, n_steps: int = 1) -> NeuroFlow:
    agent = NeuroFlow(
        env_id, 8, 16, buffer_size=1000, seed=seed, device="cpu", n_steps=n_steps, **HYPER
    )
    agent.hand_written_gradients = hand_written
    return agent


def make_batch(agent: NeuroFlow, seed: int) -> Batch:
    """Random transitions of the buffer's widths, a quarter of them terminal; n-step
    agents' rows cover 1 to n steps (discounts gamma^1 .. gamma^n)."""
    gen = torch.Generator().manual_seed(seed)
    obs_dim = agent.actor.wiring.in_features
    hidden = agent.actor.hidden_size

    def randn(width: int) -> torch.Tensor:
        return torch.randn(BATCH_SIZE, width, generator=gen)

    if agent.head.kind == "discrete":
        actions = torch.randint(agent.head.n, (BATCH_SIZE, 1), generator=gen).float()
    else:
        actions = torch.rand(BATCH_SIZE, agent.head.action_dim, generator=gen) * 2 - 1
    dones = (torch.arange(BATCH_SIZE) % 4 == 1).float().unsqueeze(1)
    discounts = None
    if agent.n_steps > 1:
        steps = torch.randint(1, agent.n_steps + 1, (BATCH_SIZE, 1), generator=gen)
        discounts = HYPER["gamma"] ** steps.float()
    return Batch(
        states=randn(obs_dim),
        actions=actions,
        rewards=randn(1),
        next_states=randn(obs_dim),
        dones=dones,
        hidden=torch.tanh(randn(hidden)),
        next_hidden=torch.tanh(randn(hidden)),
        discounts=discounts,
    )


def fix_batch_and_noise(agent: NeuroFlow, batch: Batch, monkeypatch) -> None:
    def sample(batch_size: int) -> Batch:
        assert batch_size == BATCH_SIZE
        return batch

    def sample_n_step(batch_size: int, n_steps: int, gamma: float) -> Batch:
        assert (n_steps, gamma) == (agent.n_steps, HYPER["gamma"])
        return sample(batch_size)

    monkeypatch.setattr(agent.buffer, "sample", sample)
    monkeypatch.setattr(agent.buffer, "sample_n_step", sample_n_step)
    if agent.head.kind == "continuous":
        monkeypatch.setattr(agent.head, "noise_like", fixed_noise)


def capture_step_grads(agent: NeuroFlow, monkeypatch) -> dict[str, dict[str, torch.Tensor]]:
    """Record each optimiser's gradients at the moment it steps, keyed by parameter name.

    Returns a dict that fills, per optimiser, as an `update()` steps them; empty it
    between updates. Reading `.grad` after `update()` would instead also see whatever
    later backward passes leave on the parameters.
    """
    names = {id(p): f"actor.{n}" for n, p in agent.actor.named_parameters()}
    names |= {id(p): f"critic.{n}" for n, p in agent.critic.named_parameters()}
    names[id(agent.log_alpha)] = "log_alpha"
    stepped: dict[str, dict[str, torch.Tensor]] = {}

    for optim_name in ("critic_optim", "actor_optim", "entropy_optim"):
        optim = getattr(agent, optim_name)

        def step(*args, _optim=optim, _real=optim.step, _name=optim_name, **kwargs):
            assert _name not in stepped, f"{_name} stepped twice in one update"
            grads = stepped[_name] = {}
            for group in _optim.param_groups:
                for p in group["params"]:
                    assert p.grad is not None, f"{names[id(p)]} has no gradient"
                    grads[names[id(p)]] = p.grad.detach().clone()
            return _real(*args, **kwargs)

        monkeypatch.setattr(optim, "step", step)
    return stepped


def critic_forward(ensemble: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each critic on its own: masked weights, plain matmuls and Mish, one at a time.

    Deliberately not `ensemble(x)`, so the batched module itself is under test.
    """
    layers = list(zip(ensemble.weights, ensemble.biases, ensemble.masks(), strict=True))
    outputs = []
    for i in range(ensemble.n_critics):
        h = x
        for k, (weight, bias, mask) in enumerate(layers):
            h = h @ (weight[i] * mask[i]).T + bias[i].reshape(-1)
            if k < len(layers) - 1:
                h = h * torch.tanh(F.softplus(h))
        outputs.append(h)
    return outputs


def min_q(qs: list[torch.Tensor]) -> torch.Tensor:
    return functools.reduce(torch.minimum, qs)


class ReferenceSAC:
    """Textbook SAC in float64 on copies of the agent's networks, with plain Adam."""

    def __init__(self, agent: NeuroFlow) -> None:
        self.head = agent.head
        self.discrete = agent.head.kind == "discrete"
        self.actor = copy.deepcopy(agent.actor).double()
        self.critic = copy.deepcopy(agent.critic).double()
        self.critic_target = copy.deepcopy(agent.critic_target).double()
        self.log_alpha = agent.log_alpha.detach().double().clone().requires_grad_(True)

        def adam(params, lr):
            return torch.optim.Adam(params, lr=lr, foreach=False, fused=False)

        self.actor_optim = adam(self.actor.parameters(), HYPER["actor_lr"])
        self.critic_optim = adam(self.critic.parameters(), HYPER["critic_lr"])
        self.entropy_optim = adam([self.log_alpha], HYPER["alpha_lr"])

    def params(self) -> dict[str, torch.Tensor]:
        out = {f"actor.{n}": p for n, p in self.actor.named_parameters()}
        out |= {f"critic.{n}": p for n, p in self.critic.named_parameters()}
        out |= {f"critic_target.{n}": p for n, p in self.critic_target.named_parameters()}
        out["log_alpha"] = self.log_alpha
        return out

    def gaussian(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tanh-squashed reparameterised sample and its log-density, the naive way."""
        mean, log_std = output.chunk(2, dim=-1)
        std = log_std.clamp(self.head.log_std_min, self.head.log_std_max).exp()
        # The agent sees its float32 mean; round ours the same way before the noise.
        u = mean + fixed_noise(mean.float()).double() * std
        action = torch.tanh(u)
        log_prob = Normal(mean, std).log_prob(u) - torch.log(1 - action.pow(2) + TANH_EPS)
        return action, log_prob.sum(dim=-1)

    def _step(self, optim, params, loss) -> dict[str, torch.Tensor]:
        named = dict(params)
        grads = torch.autograd.grad(loss, list(named.values()))
        for p, g in zip(named.values(), grads, strict=True):
            p.grad = g
        optim.step()
        return {n: g.clone() for n, g in zip(named, grads, strict=True)}

    def update(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One SAC step; returns `[actor, critic, entropy]` losses and the step gradients."""
        b = Batch(*(t.double() for t in batch.transitions()))
        rewards, dones = b.rewards.squeeze(-1), b.dones.squeeze(-1)
        alpha = self.log_alpha.detach().exp()
        gamma = HYPER["gamma"] if batch.discounts is None else batch.discounts.double().squeeze(-1)

        with torch.no_grad():
            next_output, _ = self.actor(b.next_states, b.next_hidden)
            if self.discrete:
                next_probs = F.softmax(next_output, dim=-1)
                next_log_probs = F.log_softmax(next_output, dim=-1)
                next_q = min_q(critic_forward(self.critic_target, b.next_states))
                next_v = (next_probs * (next_q - alpha * next_log_probs)).sum(dim=-1)
            else:
                next_action, next_log_prob = self.gaussian(next_output)
                sa = torch.cat((b.next_states, next_action), dim=-1)
                next_q = min_q(critic_forward(self.critic_target, sa)).squeeze(-1)
                next_v = next_q - alpha * next_log_prob
            target = rewards + gamma * (1 - dones) * next_v

        if self.discrete:
            taken = b.actions.long()
            qs = [q.gather(-1, taken).squeeze(-1) for q in critic_forward(self.critic, b.states)]
        else:
            sa = torch.cat((b.states, b.actions), dim=-1)
            qs = [q.squeeze(-1) for q in critic_forward(self.critic, sa)]
        critic_loss = sum(0.5 * (q - target).pow(2).mean() for q in qs)
        grads = self._step(
            self.critic_optim,
            {f"critic.{n}": p for n, p in self.critic.named_parameters()},
            critic_loss,
        )

        # The actor sees the critics after their step.
        output, _ = self.actor(b.states, b.hidden)
        if self.discrete:
            probs = F.softmax(output, dim=-1)
            log_probs = F.log_softmax(output, dim=-1)
            q_pi = min_q(critic_forward(self.critic, b.states))
            actor_loss = (probs * (alpha * log_probs - q_pi)).sum(dim=-1).mean()
            expected_log_prob = (probs * log_probs).sum(dim=-1)
        else:
            action, log_prob = self.gaussian(output)
            sa = torch.cat((b.states, action), dim=-1)
            q_pi = min_q(critic_forward(self.critic, sa)).squeeze(-1)
            actor_loss = (alpha * log_prob - q_pi).mean()
            expected_log_prob = log_prob
        grads |= self._step(
            self.actor_optim,
            {f"actor.{n}": p for n, p in self.actor.named_parameters()},
            actor_loss,
        )

        entropy_loss = -(
            self.log_alpha * (expected_log_prob.detach() + self.head.target_entropy)
        ).mean()
        grads |= self._step(self.entropy_optim, {"log_alpha": self.log_alpha}, entropy_loss)

        with torch.no_grad():
            for t, p in zip(self.critic_target.parameters(), self.critic.parameters(), strict=True):
                t.mul_(1 - HYPER["tau"]).add_(HYPER["tau"] * p)
        losses = torch.stack((actor_loss, critic_loss, entropy_loss)).detach()
        return losses, grads


def agent_params(agent: NeuroFlow) -> dict[str, torch.Tensor]:
    out = {f"actor.{n}": p for n, p in agent.actor.named_parameters()}
    out |= {f"critic.{n}": p for n, p in agent.critic.named_parameters()}
    out |= {f"critic_target.{n}": p for n, p in agent.critic_target.named_parameters()}
    out["log_alpha"] = agent.log_alpha
    return out


def assert_named_close(actual: dict, expected: dict, what: str) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(
            actual[name].detach().double(),
            value.detach(),
            **TOL,
            msg=lambda m, name=name: f"{what} of {name}: {m}",
        )


@pytest.fixture(params=["hand-written", "autograd"])
def hand_written(request) -> bool:
    """Each test runs on both update paths."""
    return request.param == "hand-written"


@pytest.fixture(params=["Pendulum-v1", "box-2d", "CartPole-v1", "discrete-3"])
def env_id(request) -> str:
    """Real envs, plus the conftest tiny envs: a 2-D Box and a 3-action Discrete."""
    if request.param == "box-2d":
        return request.getfixturevalue("box_env_id")
    if request.param == "discrete-3":
        return request.getfixturevalue("discrete_env_id")
    return request.param


def run_and_compare(
    env_id: str,
    monkeypatch,
    n_updates: int,
    seed: int,
    hand_written: bool,
    capture_grads: bool = True,
    compiled: bool = False,
    n_steps: int = 1,
) -> None:
    """`capture_grads=False` leaves the optimisers unwrapped, so their fused-kernel
    shortcut runs; only losses and parameters are compared then. `compiled` runs the
    update through `NeuroFlow.compile`."""
    agent = make_agent(env_id, seed, hand_written, n_steps)
    assert agent.uses_hand_written_gradients() == hand_written
    reference = ReferenceSAC(agent)
    batch = make_batch(agent, seed + 100)
    fix_batch_and_noise(agent, batch, monkeypatch)
    if compiled:
        agent.compile()
        torch._dynamo.reset()  # compile afresh, whatever ran before in this process
        torch._dynamo.utils.counters.clear()
    step_grads = capture_step_grads(agent, monkeypatch) if capture_grads else None
    params_before = {n: p.detach().clone() for n, p in agent_params(agent).items()}

    for i in range(n_updates):
        # Any random draw the update makes must not matter: reseed differently each time.
        torch.manual_seed(1000 + i)
        losses = agent.update(BATCH_SIZE)
        ref_losses, ref_grads = reference.update(batch)

        assert losses.shape == (3,) and not losses.requires_grad
        torch.testing.assert_close(
            losses.double(), ref_losses, **TOL, msg=lambda m, i=i: f"losses, update {i}: {m}"
        )
        if step_grads is not None:
            assert step_grads.keys() == {"critic_optim", "actor_optim", "entropy_optim"}
            grads = {n: g for optim_grads in step_grads.values() for n, g in optim_grads.items()}
            step_grads.clear()
            assert_named_close(grads, ref_grads, f"gradient (update {i})")
        assert_named_close(agent_params(agent), reference.params(), f"update {i}")

    # The comparison is not vacuous: every group of parameters moved.
    for prefix in ("actor.", "critic.", "critic_target.", "log_alpha"):
        moved = [
            not torch.equal(p.detach(), params_before[n])
            for n, p in agent_params(agent).items()
            if n.startswith(prefix)
        ]
        assert any(moved), f"no {prefix} parameter changed"
    if compiled:  # it did run compiled: every stage one whole graph
        counters = torch._dynamo.utils.counters
        assert counters["stats"]["unique_graphs"] == (2 if hand_written else 3)
        assert not counters["graph_break"]


def test_one_update_matches_reference_sac(env_id, hand_written, monkeypatch):
    """Losses, step gradients and parameters after one update equal the reference's."""
    run_and_compare(env_id, monkeypatch, n_updates=1, seed=0, hand_written=hand_written)


def test_consecutive_updates_match_reference_sac(env_id, hand_written, monkeypatch):
    """Three updates in a row: the Adam state and the target critics carry over."""
    run_and_compare(env_id, monkeypatch, n_updates=3, seed=7, hand_written=hand_written)


def test_updates_through_the_fused_adam_shortcut_match_reference_sac(
    env_id, hand_written, monkeypatch
):
    """Unwrapped optimisers step through `apply_gradients`' fused kernel call."""
    run_and_compare(
        env_id, monkeypatch, n_updates=3, seed=11, hand_written=hand_written, capture_grads=False
    )


def test_n_step_updates_match_reference_sac(env_id, hand_written, monkeypatch):
    """With n-step rows, each row's own discount replaces gamma in the target."""
    run_and_compare(env_id, monkeypatch, n_updates=2, seed=5, hand_written=hand_written, n_steps=3)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_compiled_updates_match_reference_sac(env_id, hand_written, monkeypatch):
    """`NeuroFlow.compile` changes how the update runs, not what it computes."""
    run_and_compare(
        env_id,
        monkeypatch,
        n_updates=3,
        seed=13,
        hand_written=hand_written,
        capture_grads=False,
        compiled=True,
    )


def test_compiled_n_step_updates_match_reference_sac(hand_written, monkeypatch):
    """Per-row discounts go through the compiled stages as they do eagerly."""
    run_and_compare(
        "CartPole-v1",
        monkeypatch,
        n_updates=2,
        seed=17,
        hand_written=hand_written,
        capture_grads=False,
        compiled=True,
        n_steps=3,
    )
