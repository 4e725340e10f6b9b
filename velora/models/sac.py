"""Soft Actor-Critic as three losses in plain autograd: what NeuroFlow minimises.

Haarnoja et al. (2018) for `Box` actions, Christodoulou (2019) for `Discrete` ones, in
CleanRL's order: the twin critics step on the clipped double-Q soft Bellman target,
the actor steps against the updated critics, then the temperature, then the target
critics are Polyak-averaged. The action-space head hides the one real difference: the
expectation over the policy is a single reparameterised sample (weight 1) for a
squashed Gaussian and an exact probability-weighted sum for a categorical policy.

To change the algorithm, subclass `NeuroFlow` and override a loss (see
`docs/algorithm.md`); the update, the loop, saving and `compile()` pick the override
up. The default losses also have hand-written gradients
(`velora.models.handwritten_update`), which run only while none of these is overridden
and are tested against them.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from velora.buffer import Batch, Windows, n_step_returns
from velora.models.critic import CriticEnsemble
from velora.models.heads import PolicyHead, PolicySample
from velora.models.optim import apply_gradients
from velora.nn import LiquidNCPNetwork
from velora.utils.torch import compile_function, soft_update

#: the methods whose override turns the hand-written gradients off.
LOSS_METHODS = ("policy_outputs", "critic_loss", "actor_loss", "alpha_loss")
#: what the critics may see besides the observation (`NeuroFlow(critic_history=...)`).
CRITIC_HISTORIES = ("none", "actor_hidden", "own")


class SoftActorCritic:
    """SAC's losses and their gradient step, on the networks a subclass builds."""

    actor: LiquidNCPNetwork
    critic: CriticEnsemble
    critic_target: CriticEnsemble
    #: `critic_history="own"`: the critics' recurrent memory and its Polyak target; else None.
    critic_memory: LiquidNCPNetwork | None
    critic_memory_target: LiquidNCPNetwork | None
    head: PolicyHead
    log_alpha: torch.Tensor
    gamma: float
    #: the steps each critic target sums rewards over before it bootstraps (n-step returns).
    n_steps: int
    tau: float
    critic_history: str
    actor_optim: torch.optim.Optimizer
    critic_optim: torch.optim.Optimizer
    entropy_optim: torch.optim.Optimizer
    #: what `autograd_update` runs: `EAGER_LOSSES`, or `compile_losses()` after `compile()`.
    _loss_stages: "LossStages"

    @property
    def alpha(self) -> torch.Tensor:
        """The entropy temperature, detached: a constant in the actor and critic losses."""
        return self.log_alpha.detach().exp()

    def policy_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's raw outputs for `states` and `next_states`, from the stored hidden
        states; one pass over both (its weights do not change before its own step)."""
        n = batch.states.shape[0]
        output, _ = self.actor(
            torch.cat((batch.states, batch.next_states)),
            torch.cat((batch.hidden, batch.next_hidden)),
        )
        output, next_output = output.split_with_sizes((n, n))
        return output, next_output.detach()

    def unroll(self, windows: Windows, burn_in: int) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """Sequence replay: the actor along each window from the hidden state stored at
        its head, `burn_in` steps without gradient, then through time over the rest.

        Returns the rest as one flat batch (what the losses take; positions past an
        episode's end have weight 0, so every update has the same shapes), the actor's
        outputs for its states (their graph reaching back through the window) and,
        detached, for its next states, each from the hidden state the unroll reached.
        """
        seq, length = windows.batch, windows.valid.shape[1]
        hidden = seq.hidden[:, 0]
        with torch.no_grad():
            for t in range(burn_in):
                _, hidden = self.actor(seq.states[:, t], hidden)
        outputs, hiddens = [], [hidden]
        for t in range(burn_in, length):
            output, hidden = self.actor(seq.states[:, t], hidden)
            outputs.append(output)
            hiddens.append(hidden)

        def flat(values: torch.Tensor) -> torch.Tensor:  # (batch, time, ...) -> rows
            return values[:, burn_in:].flatten(0, 1)

        # The hidden states fed in at each step and returned by it: the unroll's, fresher
        # than the stored ones (and what history-aware critics see).
        unrolled = torch.stack(hiddens, 1).detach()
        rows = Batch(*(flat(field) for field in seq.transitions()))._replace(
            hidden=unrolled[:, :-1].flatten(0, 1),
            next_hidden=unrolled[:, 1:].flatten(0, 1),
            weights=flat(windows.valid).to(seq.states.dtype),
        )
        with torch.no_grad():
            next_output, _ = self.actor(rows.next_states, rows.next_hidden)
        return rows, torch.stack(outputs, 1).flatten(0, 1), next_output

    def remember(self, windows: Windows, burn_in: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`critic_history="own"`: the critics' memory along each window, from a zero
        state at its head (warmed up by the `burn_in` steps, without gradient).

        Returns, for the rows of `unroll`'s batch, the memory's summary of each state
        (its graph reaching back through the window: the critic loss trains it through
        time) and the target memory's summary of each next state (detached).
        """
        assert self.critic_memory is not None and self.critic_memory_target is not None
        states, length = windows.batch.states, windows.valid.shape[1]
        hidden = target_hidden = self.critic_memory.initial_hidden(states.shape[0])
        with torch.no_grad():
            for t in range(burn_in):
                _, hidden = self.critic_memory(states[:, t], hidden)
                _, target_hidden = self.critic_memory_target(states[:, t], target_hidden)
        summaries, target_hiddens = [], []
        for t in range(burn_in, length):
            summary, hidden = self.critic_memory(states[:, t], hidden)
            summaries.append(summary)
            with torch.no_grad():
                _, target_hidden = self.critic_memory_target(states[:, t], target_hidden)
            target_hiddens.append(target_hidden)
        with torch.no_grad():  # each next state follows its own state's memory
            next_summary, _ = self.critic_memory_target(
                windows.batch.next_states[:, burn_in:].flatten(0, 1),
                torch.stack(target_hiddens, 1).flatten(0, 1),
            )
        return torch.stack(summaries, 1).flatten(0, 1), next_summary

    def look_ahead(
        self,
        rows: Batch,
        outputs: tuple[torch.Tensor, torch.Tensor],
        memory: tuple[torch.Tensor, torch.Tensor] | None,
        n_windows: int,
    ) -> tuple[Batch, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        """n-step returns in sequence replay. `unroll`'s windows reach `n_steps - 1`
        transitions past the positions trained on; each trained row then sums the
        rewards up to `n_steps` ahead in its episode and bootstraps from the state after
        them, with the actor's (and the critics' memory's) state reached there.

        Takes and returns `unroll`'s rows and outputs and `remember`'s memory.
        """
        ahead = n_step_returns(
            rows.rewards.unflatten(0, (n_windows, -1)),
            rows.weights.unflatten(0, (n_windows, -1)) > 0,
            self.n_steps,
            self.gamma,
        )
        positions = ahead.last.shape[1]

        def first(field: torch.Tensor) -> torch.Tensor:  # the positions trained on
            return field.unflatten(0, (n_windows, -1))[:, :positions].flatten(0, 1)

        def last(field: torch.Tensor) -> torch.Tensor:  # where each row bootstraps
            return ahead.at_last(field.unflatten(0, (n_windows, -1))).flatten(0, 1)

        rows = Batch(
            first(rows.states),
            first(rows.actions),
            ahead.rewards.flatten(0, 1),
            last(rows.next_states),
            last(rows.dones),
            first(rows.hidden),
            last(rows.next_hidden),
            weights=first(rows.weights),
            discounts=ahead.discounts.flatten(0, 1),
        )
        output, next_output = outputs
        if memory is not None:
            memory = (first(memory[0]), last(memory[1]))
        return rows, (first(output), last(next_output)), memory

    def critic_view(
        self, batch: Batch, memory: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> Batch:
        """The batch as the critics see it: each observation followed by a summary of
        the episode before it. With `critic_history="own"` that is `memory` (from
        `remember`), with "actor_hidden" the actor's hidden state fed in with the
        observation; with "none" the batch is unchanged."""
        if self.critic_history == "none":
            return batch
        if memory is None:
            if self.critic_history == "own":
                raise ValueError(
                    'critic_history="own" needs windows: update with sequence_length > 1.'
                )
            memory = (batch.hidden, batch.next_hidden)
        summary, next_summary = memory
        return batch._replace(
            states=torch.cat((batch.states, summary), dim=-1),
            next_states=torch.cat((batch.next_states, next_summary), dim=-1),
        )

    def critic_parameters(self) -> list[torch.Tensor]:
        """What the critic loss trains: the critics, and their memory if they have one."""
        memory = [] if self.critic_memory is None else list(self.critic_memory.parameters())
        return [*self.critic.parameters(), *memory]

    def critic_loss(self, batch: Batch, next_pi: PolicySample) -> torch.Tensor:
        """Sum over the critics of 0.5 * MSE to the soft Bellman target (clipped double Q).

        With n-step returns the batch's rewards cover several steps and its `discounts`
        replace gamma (the entropy bonus enters only at the state bootstrapped from).
        """
        discount = self.gamma if batch.discounts is None else batch.discounts
        with torch.no_grad():
            next_q = self.critic_target(self.head.critic_input(batch.next_states, next_pi.action))
            next_v = next_pi.expect(next_q.min(dim=0).values - self.alpha * next_pi.log_prob)
            target_q = batch.rewards + discount * (1.0 - batch.dones) * next_v.unsqueeze(-1)
        q = self.critic(self.head.critic_input(batch.states, batch.actions))
        td_error = (self.head.taken(q, batch.actions) - target_q).squeeze(-1)  # (critics, batch)
        return 0.5 * batch.mean(td_error.square()).sum()

    def actor_loss(self, batch: Batch, pi: PolicySample) -> torch.Tensor:
        """E_pi[alpha * log pi - min Q]: the critics' weights are constants here."""
        q = self.critic(self.head.critic_input(batch.states, pi.action), frozen=True)
        return batch.mean(pi.expect(self.alpha * pi.log_prob - q.min(dim=0).values))

    def alpha_loss(self, batch: Batch, pi: PolicySample) -> torch.Tensor:
        """Moves log alpha so the policy's entropy approaches the target (`pi` is detached)."""
        entropy = -batch.mean(pi.expect(pi.log_prob))
        return self.log_alpha * (entropy - self.head.target_entropy)

    def target_pairs(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """Each network that has a Polyak-averaged target, with its target."""
        pairs: list[tuple[torch.nn.Module, torch.nn.Module]] = [(self.critic, self.critic_target)]
        if self.critic_memory is not None and self.critic_memory_target is not None:
            pairs.append((self.critic_memory, self.critic_memory_target))
        return pairs

    def autograd_update(
        self,
        batch: Batch,
        outputs: tuple[torch.Tensor, torch.Tensor] | None = None,
        memory: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One gradient step of critics, actor and temperature on `batch`, then the targets.

        `outputs` are the actor's outputs for the batch's states and next states when
        the caller has them (`unroll`); by default `policy_outputs`. `memory` is the
        critics' own summary of the batch's states (`remember`). Returns the detached
        losses `[actor, critic, alpha]` as one tensor on the device.
        """
        losses = self._loss_stages
        output, next_output = losses.policy_outputs(self, batch) if outputs is None else outputs
        batch = self.critic_view(batch, memory)  # the actor has seen the batch; now the critics
        critic_loss = losses.critic(self, batch, next_output)
        critic_params = self.critic_parameters()
        apply_gradients(self.critic_optim, torch.autograd.grad(critic_loss, critic_params))

        if memory is not None:  # the memory, like the critics, is a constant to the actor
            batch = batch._replace(states=batch.states.detach())
        actor_loss, alpha_loss = losses.actor(self, batch, output)
        # One backward for both: the alpha loss sees the policy detached, and the actor
        # loss sees alpha detached, so each parameter gets its own loss's gradient.
        actor_params = list(self.actor.parameters())
        *actor_grads, alpha_grad = torch.autograd.grad(
            actor_loss + alpha_loss, [*actor_params, self.log_alpha]
        )
        apply_gradients(self.actor_optim, actor_grads)
        apply_gradients(self.entropy_optim, [alpha_grad])
        for network, target in self.target_pairs():
            soft_update(network, target, self.tau)
        return torch.stack((actor_loss, critic_loss, alpha_loss)).detach()

    def losses_are_default(self) -> bool:
        """True while no method of `LOSS_METHODS` is overridden (on the class or instance)."""
        return not any(
            name in vars(self) or getattr(type(self), name) is not getattr(SoftActorCritic, name)
            for name in LOSS_METHODS
        )


def _critic_stage(agent: SoftActorCritic, batch: Batch, next_output: torch.Tensor) -> torch.Tensor:
    return agent.critic_loss(batch, agent.head.expectation(next_output))


def _actor_stage(
    agent: SoftActorCritic, batch: Batch, output: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    pi = agent.head.expectation(output)
    return agent.actor_loss(batch, pi), agent.alpha_loss(batch, pi.detached())


def _policy_outputs(agent: SoftActorCritic, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    return agent.policy_outputs(batch)


def _unroll(
    agent: SoftActorCritic, windows: Windows, burn_in: int
) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    return agent.unroll(windows, burn_in)


def _remember(
    agent: SoftActorCritic, windows: Windows, burn_in: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return agent.remember(windows, burn_in)


class LossStages(NamedTuple):
    """The update's forward stages; each is a separate graph so that `compile()` can
    take it whole (the critic step falls between the actor's pass and its loss).
    `unroll` replaces `policy_outputs` with sequence replay, and `remember` runs the
    critics' own memory along the windows."""

    policy_outputs: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    critic: Callable[..., torch.Tensor]
    actor: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    unroll: Callable[..., tuple[Batch, torch.Tensor, torch.Tensor]]
    remember: Callable[..., tuple[torch.Tensor, torch.Tensor]]


EAGER_LOSSES = LossStages(_policy_outputs, _critic_stage, _actor_stage, _unroll, _remember)


def compile_losses(**inductor_options: Any) -> LossStages:
    """The stages through `torch.compile`: forward and backward graphs, fused."""
    return LossStages(*(compile_function(stage, **inductor_options) for stage in EAGER_LOSSES))
