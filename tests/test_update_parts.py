"""The hand-written pieces of the SAC update against autograd and `Optimizer.step`.

`tests/test_update_reference.py` checks the whole update; these pin each piece on its
own (heads' chain rules, the critics' backward, the fused Adam shortcut), so a failure
names the piece.
"""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from velora.models.critic import CriticEnsemble
from velora.models.heads import ContinuousHead, DiscreteHead
from velora.models.optim import apply_gradients, make_optimizer, optimized_params
from velora.nn import LiquidCell, LiquidNCPNetwork


def continuous_head(action_dim: int = 2) -> ContinuousHead:
    space = gym.spaces.Box(-2.0, 3.0, shape=(action_dim,), dtype=np.float32)
    return ContinuousHead(space, (-5.0, 2.0), torch.device("cpu"))


def vjp_of_expectation(head, output, grad_log_prob, grad_weights, grad_action):
    """What autograd gives for the same upstream gradients."""
    output = output.detach().requires_grad_(True)
    sample = head.expectation(output)
    total = (sample.log_prob * grad_log_prob).sum()
    if grad_weights is not None:
        total = total + (sample.weights * grad_weights).sum()
    if grad_action is not None:
        total = total + (sample.action * grad_action).sum()
    (grad,) = torch.autograd.grad(total, output)
    return grad


def assert_backward_matches_autograd(head, output, grads, tol: float) -> torch.Tensor:
    """`expectation_backward` for `grads` (log_prob, weights, action) against autograd."""
    ours = head.expectation_backward(head.expectation(output), *grads)
    torch.testing.assert_close(
        ours, vjp_of_expectation(head, output, *grads), rtol=tol, atol=10 * tol
    )
    return ours


def test_continuous_expectation_backward_matches_autograd_including_clamped_log_std():
    head = continuous_head()
    gen = torch.Generator().manual_seed(0)
    output = torch.randn(64, 4, generator=gen, dtype=torch.float64) * 2
    output[:8, 2:] = 5.0  # above log_std_max: no gradient reaches these log_std entries
    output[8:16, 2:] = -9.0  # below log_std_min
    output[16:, 2:] = output[16:, 2:].clamp(-4.5, 1.5)  # inside the range
    noise = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    head.noise_like = lambda mean: noise
    grad_log_prob = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    grad_action = torch.randn(64, 2, generator=gen, dtype=torch.float64)

    # d/du (u + softplus(-2u)) is written as tanh(u); autograd's form differs by a few
    # float64 ulps where |u| is large.
    ours = assert_backward_matches_autograd(head, output, (grad_log_prob, None, grad_action), 1e-8)
    assert torch.all(ours[:16, 2:] == 0) and torch.all(ours[16:, 2:] != 0)
    # Without an action gradient only the log-density's own terms remain.
    assert_backward_matches_autograd(head, output, (grad_log_prob, None, None), 1e-8)


def test_discrete_expectation_backward_matches_autograd():
    head = DiscreteHead(gym.spaces.Discrete(5))
    gen = torch.Generator().manual_seed(1)
    output = torch.randn(32, 5, generator=gen, dtype=torch.float64) * 3
    grad_log_prob = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    grad_weights = torch.randn(32, 5, generator=gen, dtype=torch.float64)

    for weights_grad in (grad_weights, None):
        assert_backward_matches_autograd(head, output, (grad_log_prob, weights_grad, None), 1e-10)


def test_discrete_taken_backward_is_the_gather_gradient():
    head = DiscreteHead(gym.spaces.Discrete(3))
    q = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([[0.0], [2.0], [1.0], [2.0], [0.0], [1.0]])
    grad = torch.randn(2, 6, 1, dtype=torch.float64)
    (expected,) = torch.autograd.grad((head.taken(q, actions) * grad).sum(), q)
    assert torch.equal(head.taken_backward(grad, q, actions), expected)


@pytest.mark.parametrize("n_critics", [1, 2, 3])
def test_critic_backward_matches_autograd_through_forward(n_critics):
    critics = CriticEnsemble(6, 16, 2, n_critics=n_critics, seed=3).double()
    x = torch.randn(20, 6, dtype=torch.float64)
    grad = torch.randn(n_critics, 20, 2, dtype=torch.float64)

    q, tape = critics.forward_saved(x)
    x_grad, param_grads = critics.backward(tape, grad, x_grad=True, params=True)

    x_leaf = x.clone().requires_grad_(True)
    reference = critics(x_leaf)
    expected = torch.autograd.grad((reference * grad).sum(), [x_leaf, *critics.parameters()])
    assert torch.equal(q, reference.detach())
    torch.testing.assert_close(x_grad, expected[0], rtol=1e-10, atol=1e-12)
    assert len(param_grads) == len(expected) - 1
    for ours, theirs in zip(param_grads, expected[1:], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    # The pieces asked for, and only those.
    assert critics.backward(tape, grad, x_grad=False, params=True)[0] is None
    x_only, none = critics.backward(tape, grad, x_grad=True, params=False)
    assert none == [] and torch.equal(x_only, x_grad)
    # A slice asks for those input columns only (the actor stage wants the action's).
    columns, _ = critics.backward(tape, grad, x_grad=slice(4, None), params=False)
    assert columns.shape == (20, 2)
    torch.testing.assert_close(columns, expected[0][:, 4:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grad_mode", [torch.no_grad, torch.inference_mode])
def test_liquid_backward_matches_autograd_through_the_modules(grad_mode):
    """The actor's hand-written `forward_saved` + `backward` against autograd through the
    layer modules, under `no_grad` and under the `inference_mode` the update runs in."""
    torch.manual_seed(0)
    net = LiquidNCPNetwork(5, 20, 4, seed=2).double()
    x = torch.randn(9, 5, dtype=torch.float64)
    hidden = torch.randn(9, net.hidden_size, dtype=torch.float64)
    grad = torch.randn(9, 4, dtype=torch.float64)

    with grad_mode():
        output, new_hidden, tape = net.forward_saved(x, hidden)
        grads = net.backward(tape, grad)

    output_ref, new_hidden_ref = net.forward_modules(x, hidden)
    expected = torch.autograd.grad((output_ref * grad).sum(), list(net.parameters()))
    torch.testing.assert_close(output, output_ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(new_hidden, new_hidden_ref.detach(), rtol=1e-12, atol=1e-12)
    assert not output.requires_grad and not new_hidden.requires_grad
    assert len(grads) == len(expected)
    for (name, _), ours, theirs in zip(net.named_parameters(), grads, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("mode", ["no_gate", "pure"])
def test_hand_written_liquid_backward_refuses_other_cell_modes(mode):
    net = LiquidNCPNetwork(5, 20, 4, seed=2)
    net.command = LiquidCell(net.command.in_features, net.hidden_size, mode=mode)
    with pytest.raises(ValueError, match=f"default cell mode only, not '{mode}'"):
        net.forward_saved(torch.randn(3, 5), net.initial_hidden(3))


def _two_models(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    twin.load_state_dict(model.state_dict())
    return model, twin


@pytest.mark.parametrize("optim", [torch.optim.Adam, torch.optim.AdamW])
def test_apply_gradients_equals_optimizer_step(optim):
    """The fused-kernel shortcut gives bit-identical parameters and optimiser state, also
    across a state load (the shortcut counts every step with one op on shared storage; a
    load brings separate step tensors, which must be counted too)."""
    ours, theirs = _two_models()
    ours_optim = make_optimizer(optim, ours.parameters(), 1e-2)
    theirs_optim = make_optimizer(optim, theirs.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(5)
    for step in range(6):
        if step == 3:  # a changed learning rate is picked up, as step() would
            for opt in (ours_optim, theirs_optim):
                opt.param_groups[0]["lr"] = 3e-3
        if step == 4:  # reload our own state: fresh, separate step tensors
            ours_optim.load_state_dict(copy.deepcopy(ours_optim.state_dict()))
        grads = [torch.randn(p.shape, generator=gen) for p in ours.parameters()]
        apply_gradients(ours_optim, grads)
        for p, g in zip(theirs.parameters(), grads, strict=True):
            p.grad = g.clone()
        theirs_optim.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
        assert a.grad is None
    ours_state, theirs_state = ours_optim.state_dict(), theirs_optim.state_dict()
    for key, values in theirs_state["state"].items():
        for name, value in values.items():
            assert torch.equal(ours_state["state"][key][name], value), (key, name)


def test_apply_gradients_steps_each_weight_with_its_own_gradient_whatever_the_layout():
    """`torch.autograd.grad` can hand back a transposed layout; the fused CPU kernel
    would read it in memory order. The zero gradients mark where no step may land."""
    weight = torch.nn.Parameter(torch.randn(2, 3, 4))
    twin = torch.nn.Parameter(weight.detach().clone())
    ours, theirs = (make_optimizer(torch.optim.Adam, [p], 1e-2) for p in (weight, twin))
    grad = torch.randn(2, 4, 3).transpose(1, 2)  # (2, 3, 4), not contiguous
    grad[0, 0, :] = 0.0
    for _ in range(3):  # the first step() creates the state, then the kernel shortcut
        apply_gradients(ours, [grad])
        twin.grad = grad.contiguous()
        theirs.step()
    assert torch.equal(weight, twin)
    assert torch.equal(weight[0, 0], twin[0, 0]) and not torch.equal(weight[0, 1], twin.grad[0, 1])


def test_the_fused_kernel_shortcut_falls_back_to_step_on_an_unknown_torch(monkeypatch):
    """A torch whose kernel has another name: the self-check fails and every step goes
    through `step()`, with the same result."""
    from velora.utils import torch_private

    model, twin = _two_models()
    ours_optim = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    theirs_optim = torch.optim.Adam(twin.parameters(), lr=1e-2, fused=True)
    monkeypatch.setattr(torch_private, "ADAM_KERNEL", "_fused_adam_renamed_")
    monkeypatch.setattr(torch_private, "_kernel_agrees", None)
    steps = []
    real_step = torch.optim.Adam.step
    monkeypatch.setattr(
        torch.optim.Adam, "step", lambda self, *a: steps.append(self) or real_step(self, *a)
    )
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
        apply_gradients(ours_optim, grads)
        for p, g in zip(twin.parameters(), grads, strict=True):
            p.grad = g
        theirs_optim.step()
    assert torch_private._kernel_agrees is False
    assert steps.count(ours_optim) == 3
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_apply_gradients_runs_patched_steps_and_other_optimizers():
    """A wrapped `step` (schedulers, tests) and non-Adam classes take `step()` itself."""
    model, _ = _two_models()
    optim = make_optimizer(torch.optim.SGD, model.parameters(), 0.5)
    before = [p.detach().clone() for p in model.parameters()]
    grads = [torch.ones_like(p) for p in model.parameters()]
    apply_gradients(optim, grads)
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.allclose(p, b - 0.5)

    adam = make_optimizer(torch.optim.Adam, model.parameters(), 1e-3)
    seen = []
    real_step = adam.step
    adam.step = lambda: (seen.append([p.grad.clone() for p in optimized_params(adam)]), real_step())
    for _ in range(2):
        apply_gradients(adam, grads)
    assert len(seen) == 2 and all(torch.equal(g, 1.0 + 0 * g) for g in seen[1])


def test_discrete_act_draws_actions_with_the_softmax_probabilities():
    head = DiscreteHead(gym.spaces.Discrete(4))
    logits = torch.tensor([2.0, 0.5, -1.0, 0.0])
    torch.manual_seed(0)
    n = 200_000
    actions = head.act(logits.expand(n, 4), deterministic=False)
    assert actions.shape == (n, 1) and actions.dtype == torch.long
    frequencies = torch.bincount(actions[:, 0], minlength=4) / n
    # Within 5 standard errors of each probability (about 0.005 at this n).
    torch.testing.assert_close(frequencies, torch.softmax(logits, -1), rtol=0, atol=0.005)
    assert torch.equal(head.act(logits.expand(3, 4), deterministic=True), torch.zeros(3, 1).long())


def test_update_leaves_ordinary_tensors_that_autograd_and_later_updates_accept():
    """The gradient stages run under `inference_mode`; what outlives an update (the
    parameters, the optimisers' state, the losses summed by the loop) must stay usable
    outside it: in-place writes, autograd through the networks, further updates."""
    from velora.models import NeuroFlow

    agent = NeuroFlow("Pendulum-v1", 8, 16, buffer_size=500, seed=0)
    agent.train(32, n_episodes=1, max_steps=80, display_count=10)  # 16 updates
    optims = agent.optimizers().values()
    states = [t for optim in optims for state in optim.state.values() for t in state.values()]
    networks = (agent.actor, agent.critic, agent.critic_target)
    tensors = [p for net in networks for p in net.parameters()] + [agent.log_alpha, *states]
    assert states and not any(t.is_inference() for t in tensors)

    losses = torch.zeros(3)
    losses += agent.update(32)  # the loop accumulates them in place, outside the mode
    assert torch.isfinite(losses).all()
    obs = torch.randn(4, 3)
    output, _ = agent.actor(obs)  # a graph through the actor, as a user might record
    (grad,) = torch.autograd.grad(output.square().sum(), agent.actor.inter.weight)
    assert grad.abs().sum() > 0
