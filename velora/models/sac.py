"""The SAC update, written once for every action space (the heads hide the difference).

Order and equations follow CleanRL's SAC (Haarnoja et al., 2018; Christodoulou, 2019
for discrete actions): the twin critics step on the clipped double-Q soft Bellman
target, then the actor steps against the updated critics, then the temperature, then
the target critics are Polyak-averaged. The arrangement is tuned for networks so small
that the number of tensor ops, not their arithmetic, sets the cost; the results are
those of the textbook equations (checked against a plain reference in the tests).
"""

from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from velora.buffer import Batch
from velora.utils import soft_update

if TYPE_CHECKING:
    from velora.models.neuroflow import NeuroFlow


def sac_update(agent: "NeuroFlow", batch: Batch) -> torch.Tensor:
    """One gradient step of critics, actor and temperature on `batch`.

    Returns the detached losses `[actor, critic, entropy]` as one tensor on the device,
    so callers can accumulate them without a host sync.
    """
    head, critic = agent.head, agent.critic
    n = batch.states.shape[0]
    alpha = agent.log_alpha.detach().exp()

    # One actor pass over s and s'. The actor's weights do not change before its own
    # step, so its output for s is what a second pass after the critic step would give.
    output, _ = agent.actor(
        torch.cat((batch.states, batch.next_states)), torch.cat((batch.hidden, batch.next_hidden))
    )
    pi, next_pi = head.expectation(output).split(n)

    # Critics: regress on the soft Bellman target of the target critics (clipped double Q).
    with torch.no_grad():
        next_q = head.q_values(agent.critic_target, batch.next_states, next_pi.action)
        next_v = next_pi.expect(next_q.min(dim=0).values - alpha * next_pi.log_prob)
        target_q = batch.rewards + agent.gamma * (1.0 - batch.dones) * next_v.unsqueeze(-1)
    current_q = head.taken_q(critic, batch.states, batch.actions)
    # Sum over critics of 0.5 * MSE: every critic's error has the same size.
    critic_loss = 0.5 * critic.n_critics * F.mse_loss(current_q, target_q.expand_as(current_q))
    agent.critic_optim.zero_grad(set_to_none=True)
    critic_loss.backward()
    agent.critic_optim.step()

    # Actor: maximise E_pi[min Q - alpha * log pi] against the updated, frozen critics.
    q_pi = head.q_values(partial(critic, frozen=True), batch.states, pi.action)
    actor_loss = pi.expect(alpha * pi.log_prob - q_pi.min(dim=0).values).mean()
    # Temperature: push the policy's entropy towards the target.
    expected_log_prob = pi.expect(pi.log_prob).detach()
    entropy_loss = -(agent.log_alpha * (expected_log_prob + head.target_entropy)).mean()
    # One backward for both: alpha is a constant in the actor loss and log pi in the
    # temperature loss, so their gradients do not mix.
    agent.actor_optim.zero_grad(set_to_none=True)
    agent.entropy_optim.zero_grad(set_to_none=True)
    (actor_loss + entropy_loss).backward()
    agent.actor_optim.step()
    agent.entropy_optim.step()

    soft_update(critic, agent.critic_target, agent.tau)
    return torch.stack((actor_loss, critic_loss, entropy_loss)).detach()
