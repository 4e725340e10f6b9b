"""Action-space heads: everything that differs between discrete and continuous SAC.

A head turns the actor's raw output into actions, log-probabilities and the weights
used to take expectations over the policy. For a `Box` space the policy is a
tanh-squashed Gaussian and the expectation is the single sampled action (weight 1);
for a `Discrete` space it is categorical and the expectation is an exact sum over all
actions weighted by their probabilities (Christodoulou, 2019). With that one shape the
SAC losses are written once, in `velora.models.sac`.
"""

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import gymnasium as gym
import torch
import torch.nn.functional as F

from velora.training.config import DISCRETE_INITIAL_ALPHA, DISCRETE_TARGET_SCALE
from velora.utils.torch import scalar_like


class GaussianTerms(NamedTuple):
    """What the continuous head's `expectation_backward` reuses from its forward."""

    raw_log_std: torch.Tensor  # before the clamp
    log_std: torch.Tensor
    noise: torch.Tensor
    std: torch.Tensor


class PolicySample(NamedTuple):
    """Actions in policy space, and the log-probs/weights of the policy expectation.

    `action` is `(batch, action_dim)`; `log_prob` is `(batch, k)` with k = 1 for
    continuous heads (the sampled action) and k = n for discrete heads, where `weights`
    holds the `(batch, n)` probabilities. `weights` is None for a single sampled action
    (weight 1), and `action` is None where the expectation needs no drawn action
    (discrete heads). `saved` is what the head's `expectation_backward` reuses (None
    where it needs nothing beyond the fields).
    """

    action: torch.Tensor | None
    log_prob: torch.Tensor
    weights: torch.Tensor | None
    saved: GaussianTerms | None = None

    def detached(self) -> "PolicySample":
        """The same sample cut from the graph: its terms become constants."""
        action = None if self.action is None else self.action.detach()
        weights = None if self.weights is None else self.weights.detach()
        return PolicySample(action, self.log_prob.detach(), weights, self.saved)

    def expect(self, values: torch.Tensor) -> torch.Tensor:
        """E_pi[values] per row, `(batch,)`, for `values` shaped like `log_prob`."""
        if self.weights is None:
            return values[..., 0]
        return (self.weights * values).sum(dim=-1)


class PolicyHead(ABC):
    """What the agent needs to know about its action space."""

    #: width of an action as stored in the replay buffer.
    action_dim: int
    #: size of the actor's output layer.
    actor_out: int
    #: size of the critic's output layer.
    critic_out: int
    #: the entropy the temperature is tuned towards.
    target_entropy: float
    #: the temperature training starts from, unless `NeuroFlow(initial_alpha=...)` sets one.
    initial_alpha: float
    #: "discrete" or "continuous".
    kind: str

    @abstractmethod
    def critic_in(self, state_dim: int) -> int:
        """Size of the critic's input."""

    @abstractmethod
    def act(
        self,
        actor_output: torch.Tensor,
        deterministic: bool = False,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Policy-space actions: drawn, or deterministically the most likely ones.

        Only the action, none of the log-probability terms: this runs every env step.
        `noise` is a standard normal draw per action dimension when given (pink
        exploration); else the head draws its own.
        """

    @abstractmethod
    def expectation(self, actor_output: torch.Tensor) -> PolicySample:
        """The terms of the expectations over the policy that the SAC losses take."""

    @abstractmethod
    def expectation_backward(
        self,
        sample: PolicySample,
        grad_log_prob: torch.Tensor,
        grad_weights: torch.Tensor | None,
        grad_action: torch.Tensor | None,
    ) -> torch.Tensor:
        """The gradient w.r.t. the actor output, from those w.r.t. `sample`'s fields.

        The chain rule of `expectation` written out (the update runs without autograd).
        Gradients broadcast against their fields (a 0-dim one is the same for every
        entry); a None gradient is zero.
        """

    @abstractmethod
    def critic_input(self, states: torch.Tensor, action: torch.Tensor | None) -> torch.Tensor:
        """What the critics see for `states` and policy-space `action`."""

    @abstractmethod
    def taken(self, q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q of the stored `actions` from the critics' `(n_critics, batch, k)` output."""

    @abstractmethod
    def taken_backward(
        self, grad: torch.Tensor, q: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """The gradient w.r.t. the critics' output `q`, from that w.r.t. `taken(q)`."""

    @abstractmethod
    def random_action(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """Uniformly random policy-space actions, for warm-up."""

    @abstractmethod
    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """Map policy-space actions to what the env's `step` accepts."""


class ContinuousHead(PolicyHead):
    """Tanh-squashed Gaussian policy; actions live in [-1, 1] and are rescaled for the env."""

    kind = "continuous"

    def __init__(self, space: gym.spaces.Box, log_std: tuple[float, float], device: torch.device):
        if len(space.shape) != 1:
            raise ValueError(f"Box action spaces must be 1-D, got shape {space.shape}.")
        if not (space.is_bounded("both")):
            raise ValueError(
                "Box action spaces must be bounded on both sides for a squashed policy."
            )
        self.action_dim = space.shape[0]
        self.actor_out = 2 * self.action_dim
        self.critic_out = 1
        self.target_entropy = -float(self.action_dim)
        self.initial_alpha = 1.0
        # The constant terms of the log-density: per dim 0.5 log(2 pi) + 2 log 2.
        self._log_prob_offset = self.action_dim * (0.5 * math.log(2 * math.pi) + 2 * math.log(2))
        self.log_std_min, self.log_std_max = log_std
        low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
        self.scale = (high - low) / 2.0
        self.bias = (high + low) / 2.0

    def critic_in(self, state_dim: int) -> int:
        return state_dim + self.action_dim

    def noise_like(self, mean: torch.Tensor) -> torch.Tensor:
        """Standard normal noise of the reparameterised sample (tests fix it)."""
        return torch.randn_like(mean)

    def _mean_log_std(self, actor_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = actor_output.chunk(2, dim=-1)
        return mean, self._clamp_log_std(log_std)

    def _clamp_log_std(self, log_std: torch.Tensor) -> torch.Tensor:
        low, high = scalar_like(self.log_std_min, log_std), scalar_like(self.log_std_max, log_std)
        return torch.clamp(log_std, low, high)

    def act(
        self,
        actor_output: torch.Tensor,
        deterministic: bool = False,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mean, log_std = self._mean_log_std(actor_output)
        if deterministic:
            return torch.tanh(mean)
        noise = self.noise_like(mean) if noise is None else noise
        return torch.tanh(torch.addcmul(mean, noise, log_std.exp()))

    def expectation(self, actor_output: torch.Tensor) -> PolicySample:
        """One reparameterised sample (weight 1) and its log-density."""
        mean, raw_log_std = actor_output.chunk(2, dim=-1)
        log_std = self._clamp_log_std(raw_log_std)
        std = log_std.exp()
        noise = self.noise_like(mean)
        u = torch.addcmul(mean, noise, std)
        action = torch.tanh(u)
        # Gaussian log-density of u, minus log|d tanh(u)/du| = 2 log 2 - 2 log(e^u + e^-u)
        # in the stable logaddexp form (Haarnoja et al. 2018 app. C); the constants sit
        # in the offset.
        log_prob = torch.addcmul(log_std, noise, noise, value=0.5)
        log_prob = log_prob.sub_(torch.logaddexp(u, u.neg()), alpha=2.0)
        log_prob = log_prob.sum(dim=-1, keepdim=True)
        log_prob = torch.sub(scalar_like(-self._log_prob_offset, log_prob), log_prob)
        return PolicySample(action, log_prob, None, GaussianTerms(raw_log_std, log_std, noise, std))

    def expectation_backward(
        self,
        sample: PolicySample,
        grad_log_prob: torch.Tensor,
        grad_weights: torch.Tensor | None,
        grad_action: torch.Tensor | None,
    ) -> torch.Tensor:
        raw_log_std, log_std, noise, std = sample.saved  # GaussianTerms
        action = sample.action
        # d log_prob/du = 2 * tanh(u) = 2 * action, d action/du = 1 - action^2.
        if grad_action is None:
            grad_u = (2.0 * grad_log_prob) * action
        else:
            grad_u = torch.addcmul(grad_action, action, grad_log_prob, value=2.0)
            grad_u.addcmul_(grad_action * action, action, value=-1.0)
        # log_std enters through u (du/dlog_std = noise * std) and directly (-1); the
        # clamp passes gradient only inside its range (where it left the value as it
        # was), as autograd's clamp does.
        clamped = log_std != raw_log_std
        grad_log_std = (grad_u * noise * std).sub_(grad_log_prob).masked_fill_(clamped, 0.0)
        return torch.cat((grad_u, grad_log_std), dim=-1)

    def critic_input(self, states: torch.Tensor, action: torch.Tensor | None) -> torch.Tensor:
        assert action is not None, "continuous critics score a state and an action"
        return torch.cat((states, action), dim=-1)

    def taken(self, q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return q  # the critics already scored the stored actions

    def taken_backward(
        self, grad: torch.Tensor, q: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        return grad

    def random_action(self, batch_size: int, device: torch.device) -> torch.Tensor:
        return torch.rand(batch_size, self.action_dim, device=device) * 2.0 - 1.0

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, action, self.scale)


class DiscreteHead(PolicyHead):
    """Categorical policy over `Discrete(n, start)`; action indices start at 0 internally."""

    kind = "discrete"

    def __init__(self, space: gym.spaces.Discrete):
        self.n = int(space.n)
        self.start = int(space.start)
        self.action_dim = 1
        self.actor_out = self.n
        self.critic_out = self.n
        # A share of log |A|, the uniform policy's entropy, which no categorical one exceeds.
        self.target_entropy = DISCRETE_TARGET_SCALE * math.log(self.n)
        self.initial_alpha = DISCRETE_INITIAL_ALPHA

    def critic_in(self, state_dim: int) -> int:
        return state_dim

    def act(
        self,
        actor_output: torch.Tensor,
        deterministic: bool = False,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if deterministic:
            return actor_output.argmax(dim=-1, keepdim=True)
        if noise is not None:
            # Inverse-CDF sampling at u = Phi(noise): u is uniform, so action i still has
            # probability softmax(logits)_i, and correlated noise picks the same quantile
            # of the policy step after step (sustained pushes, for pink exploration).
            cdf = F.softmax(actor_output, dim=-1).cumsum(dim=-1)
            u = torch.special.ndtr(noise)
            below = (cdf < u).sum(dim=-1, keepdim=True)
            return below.clamp_(max=self.n - 1)  # u above a rounded-down final cdf
        # An exponential race (the Gumbel-max trick): with E_i ~ Exp(1), the argmax of
        # logit_i - log E_i is action i with probability softmax(logits)_i. A few fused
        # elementwise ops, cheaper than `multinomial` on one row.
        race = torch.empty_like(actor_output).exponential_().log_()
        return (actor_output - race).argmax(dim=-1, keepdim=True)

    def expectation(self, actor_output: torch.Tensor) -> PolicySample:
        """Exact sums over all actions: nothing is drawn."""
        log_prob = F.log_softmax(actor_output, dim=-1)
        return PolicySample(None, log_prob, log_prob.exp())

    def expectation_backward(
        self,
        sample: PolicySample,
        grad_log_prob: torch.Tensor,
        grad_weights: torch.Tensor | None,
        grad_action: torch.Tensor | None,
    ) -> torch.Tensor:
        probs = sample.weights
        # weights = exp(log_prob): fold their gradient into log_prob's, then through
        # log_softmax: g - softmax * sum(g).
        grad = grad_log_prob if grad_weights is None else grad_log_prob + grad_weights * probs
        return grad - probs * grad.sum(dim=-1, keepdim=True)

    def critic_input(self, states: torch.Tensor, action: torch.Tensor | None) -> torch.Tensor:
        return states  # one critic output per action

    def taken(self, q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return q.gather(-1, actions.long().expand(q.shape[0], -1, -1))

    def taken_backward(
        self, grad: torch.Tensor, q: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        index = actions.long().expand(q.shape[0], -1, -1)
        return torch.zeros_like(q).scatter_(-1, index, grad)

    def random_action(self, batch_size: int, device: torch.device) -> torch.Tensor:
        return torch.randint(self.n, (batch_size, 1), device=device)

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        index = action.squeeze(-1)
        return index + self.start if self.start else index


def make_head(space: gym.Space, log_std: tuple[float, float], device: torch.device) -> PolicyHead:
    """The head for `space`; any space other than `Box` or `Discrete` is a `ValueError`."""
    if isinstance(space, gym.spaces.Box):
        return ContinuousHead(space, log_std, device)
    if isinstance(space, gym.spaces.Discrete):
        return DiscreteHead(space)
    raise ValueError(
        f"NeuroFlow supports Discrete or Box action spaces, got {type(space).__name__}."
    )
