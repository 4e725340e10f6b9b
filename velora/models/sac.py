"""The SAC update, written once for every action space (the heads hide the difference).

Order and equations follow CleanRL's SAC (Haarnoja et al., 2018; Christodoulou, 2019
for discrete actions): the twin critics step on the clipped double-Q soft Bellman
target, then the actor steps against the updated critics, then the temperature, then
the target critics are Polyak-averaged. The arrangement is tuned for networks so small
that the number of tensor ops, not their arithmetic, sets the cost; the results are
those of the textbook equations (checked against a plain reference in the tests).
"""

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from velora.buffer import Batch
from velora.models.optim import apply_gradients, optimized_params
from velora.utils import soft_update

if TYPE_CHECKING:
    from velora.models.neuroflow import NeuroFlow


def sac_update(agent: "NeuroFlow", batch: Batch) -> torch.Tensor:
    """One gradient step of critics, actor and temperature on `batch`.

    Every gradient except the actor network's own is written out (the losses are a few
    lines each); the actor's comes from one autograd call through its one-node step.

    Returns the detached losses `[actor, critic, entropy]` as one tensor on the device,
    so callers can accumulate them without a host sync.
    """
    head, critic = agent.head, agent.critic
    n = batch.states.shape[0]
    log_alpha = agent.log_alpha.detach()
    alpha = log_alpha.exp()

    # One actor pass over s and s'. The actor's weights do not change before its own
    # step, so its output for s is what a second pass after the critic step would give.
    with torch.enable_grad():
        output, _ = agent.actor(
            torch.cat((batch.states, batch.next_states)),
            torch.cat((batch.hidden, batch.next_hidden)),
        )
    with torch.no_grad():
        pi_output, next_output = output.detach().split(n)

        # Critics: regress on the soft Bellman target of the target critics (clipped
        # double Q). Loss: the sum over critics of 0.5 * MSE, gradient (q - target) / n.
        next_pi = head.expectation(next_output)
        next_q = agent.critic_target(head.critic_input(batch.next_states, next_pi.action))
        next_v = next_pi.expect(next_q.min(dim=0).values - alpha * next_pi.log_prob)
        target_q = batch.rewards + agent.gamma * (1.0 - batch.dones) * next_v.unsqueeze(-1)
        q, tape = critic.forward_saved(head.critic_input(batch.states, batch.actions))
        error = head.taken(q, batch.actions) - target_q
        critic_loss = error.square().sum() * (0.5 / n)
        grad_q = head.taken_backward(error * (1.0 / n), q, batch.actions)
        critic_grads = critic.backward(tape, grad_q, x_grad=False, params=True)[1]
        apply_gradients(agent.critic_optim, critic_grads)

        # Actor: minimise mean_i E_pi[alpha * log pi - min Q] against the updated critics
        # (their weights are constants here: only the action's gradient flows back).
        pi = head.expectation(pi_output)
        q_pi, tape = critic.forward_saved(head.critic_input(batch.states, pi.action))
        min_q, argmin = q_pi.min(dim=0)
        values = alpha * pi.log_prob - min_q
        actor_loss = pi.expect(values).mean()
        if pi.weights is None:  # one drawn action per row, weight 1
            grad_log_prob, grad_weights = alpha / n, None
        else:  # an exact sum over actions weighted by their probabilities
            grad_log_prob, grad_weights = pi.weights * (alpha / n), values / n
        grad_action = None
        if pi.action is not None:  # the critics score the drawn action: d(-min Q)/d action
            grad_min = torch.zeros_like(q_pi).scatter_(0, argmin.unsqueeze(0), -1.0 / n)
            grad_input = critic.backward(tape, grad_min, x_grad=True, params=False)[0]
            grad_action = grad_input[:, batch.states.shape[1] :]
        grad_pi = head.expectation_backward(pi, grad_log_prob, grad_weights, grad_action)
        grad_output = F.pad(grad_pi, (0, 0, 0, n))  # the next-state rows get none
    actor_grads = torch.autograd.grad(output, optimized_params(agent.actor_optim), grad_output)
    apply_gradients(agent.actor_optim, actor_grads)

    with torch.no_grad():
        # Temperature: push the policy's entropy towards the target.
        expected_log_prob = pi.expect(pi.log_prob).mean()
        entropy_loss = -(log_alpha * (expected_log_prob + head.target_entropy))
        apply_gradients(agent.entropy_optim, [-(expected_log_prob + head.target_entropy)])

        soft_update(critic, agent.critic_target, agent.tau)
        return torch.stack((actor_loss, critic_loss, entropy_loss))
