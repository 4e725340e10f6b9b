"""The default SAC losses' gradients written out by hand: the fast path of the update.

`velora.models.sac` states what NeuroFlow computes; this module computes the same
gradients without the autograd engine, for networks so small that the number of tensor
ops, not their arithmetic, sets the cost. It runs only for the default losses and the
default cell mode (`NeuroFlow.update` checks), and `tests/test_update_reference.py`
checks it against the autograd losses. It stays while `benchmarks/throughput.py` shows
it training at least 1.3x faster than the autograd losses, eager or compiled.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F

from velora.buffer import Batch
from velora.models.optim import apply_gradients
from velora.utils.torch import compile_function, scalar_like, soft_update

if TYPE_CHECKING:
    from velora.models.neuroflow import NeuroFlow


class SACGradients(NamedTuple):
    """The two pure stages of the update; `torch.compile` can take each as it stands."""

    critic: Callable[..., tuple]
    actor: Callable[..., tuple]


def critic_gradients(
    agent: "NeuroFlow", batch: Batch, log_alpha: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], tuple]:
    """The critic loss and its gradients, and the actor's pass over s for the actor stage.

    One actor pass covers s and s': the actor's weights do not change before its own
    step, so its output for s is what a second pass after the critic step would give.
    """
    head, critic = agent.head, agent.critic
    n = batch.states.shape[0]
    alpha = log_alpha.exp()
    output, _, tape = agent.actor.forward_saved(
        torch.cat((batch.states, batch.next_states)),
        torch.cat((batch.hidden, batch.next_hidden)),
    )
    pi_output, next_output = output.split_with_sizes((n, n))

    # Regress on the soft Bellman target of the target critics (clipped double Q).
    # Loss: the sum over critics of 0.5 * MSE, gradient (q - target) / n.
    next_pi = head.expectation(next_output)
    next_q = agent.critic_target(head.critic_input(batch.next_states, next_pi.action))
    next_v = next_pi.expect(next_q.min(dim=0).values - alpha * next_pi.log_prob)
    next_v = next_v.unsqueeze(-1)
    # r + gamma * (1 - done) * V(s'), its constants as scalar arguments (see scalar_like);
    # n-step batches bring a discount per row instead of gamma.
    bootstrap = torch.addcmul(next_v, batch.dones, next_v, value=-1.0)
    if batch.discounts is None:
        target_q = batch.rewards.add(bootstrap, alpha=agent.gamma)
    else:
        target_q = torch.addcmul(batch.rewards, batch.discounts, bootstrap)
    q, critic_tape = critic.forward_saved(head.critic_input(batch.states, batch.actions))
    error = head.taken(q, batch.actions) - target_q
    critic_loss = error.square().sum() * scalar_like(0.5 / n, error)
    grad_q = head.taken_backward(error * scalar_like(1.0 / n, error), q, batch.actions)
    critic_grads = critic.backward(critic_tape, grad_q, x_grad=False, params=True)[1]
    return critic_loss, critic_grads, (pi_output, tape)


def actor_gradients(
    agent: "NeuroFlow", batch: Batch, log_alpha: torch.Tensor, actor_pass: tuple
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The actor loss and gradients against the (updated) critics, the temperature's.

    Minimises mean_i E_pi[alpha * log pi - min Q]; the critics' weights are constants
    here, only the action's gradient flows back through them.
    """
    head, critic = agent.head, agent.critic
    n = batch.states.shape[0]
    alpha = log_alpha.exp()
    pi_output, tape = actor_pass
    pi = head.expectation(pi_output)
    q_pi, critic_tape = critic.forward_saved(head.critic_input(batch.states, pi.action))
    min_q, argmin = q_pi.min(dim=0)
    values = alpha * pi.log_prob - min_q
    # Means as sums times 1/n: `mean()` and `/ n` cast a Python number on every call.
    inv_n = scalar_like(1.0 / n, values)
    actor_loss = pi.expect(values).sum() * inv_n
    if pi.weights is None:  # one drawn action per row, weight 1
        grad_log_prob, grad_weights = alpha * inv_n, None
    else:  # an exact sum over actions weighted by their probabilities
        grad_log_prob, grad_weights = pi.weights * (alpha * inv_n), values * inv_n
    grad_action = None
    if pi.action is not None:  # the critics score the drawn action: d(-min Q)/d action
        grad_min = torch.zeros_like(q_pi).scatter_(0, argmin.unsqueeze(0), -1.0 / n)
        action_columns = slice(batch.states.shape[1], None)
        grad_action = critic.backward(critic_tape, grad_min, x_grad=action_columns, params=False)[0]
    grad_pi = head.expectation_backward(pi, grad_log_prob, grad_weights, grad_action)
    # The next-state rows of the actor's pass get no gradient.
    actor_grads = agent.actor.backward(tape, F.pad(grad_pi, (0, 0, 0, n)))

    # Temperature: push the policy's entropy towards the target; d loss/d log_alpha.
    mean_log_prob = pi.expect(pi.log_prob).sum() * inv_n
    alpha_grad = torch.sub(scalar_like(-head.target_entropy, mean_log_prob), mean_log_prob)
    entropy_loss = log_alpha * alpha_grad
    return actor_loss, actor_grads, entropy_loss, alpha_grad


EAGER = SACGradients(critic_gradients, actor_gradients)


def compile_stages(**inductor_options: Any) -> SACGradients:
    """Both stages through `torch.compile` (see `NeuroFlow.compile`)."""
    return SACGradients(
        compile_function(critic_gradients, **inductor_options),
        compile_function(actor_gradients, **inductor_options),
    )


def handwritten_update(
    agent: "NeuroFlow", batch: Batch, stages: SACGradients = EAGER
) -> torch.Tensor:
    """`agent.autograd_update(batch)` with every gradient written out.

    `stages` computes them (`EAGER`, or compiled by `NeuroFlow.compile`); they are
    applied with `apply_gradients`.

    Returns the detached losses `[actor, critic, entropy]` as one tensor on the device,
    so callers can accumulate them without a host sync.
    """
    with torch.no_grad():
        log_alpha = agent.log_alpha.detach()
        # The stages make only tensors that live for this update (gradients, losses,
        # the actor's pass), so they can skip autograd's per-op bookkeeping altogether;
        # the optimiser state and parameters are written outside, as normal tensors.
        with torch.inference_mode():
            critic_loss, critic_grads, actor_pass = stages.critic(agent, batch, log_alpha)
        apply_gradients(agent.critic_optim, critic_grads)
        with torch.inference_mode():
            actor_loss, actor_grads, entropy_loss, alpha_grad = stages.actor(
                agent, batch, log_alpha, actor_pass
            )
        apply_gradients(agent.actor_optim, actor_grads)
        apply_gradients(agent.entropy_optim, [alpha_grad])
        soft_update(agent.critic, agent.critic_target, agent.tau)
        return torch.stack((actor_loss, critic_loss, entropy_loss))
