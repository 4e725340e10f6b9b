"""Observation normalisation with running statistics that live in the agent."""

import torch
from torch import nn


class ObservationNormalizer(nn.Module):
    """Scales observations to zero mean and unit variance by running statistics.

    The statistics are buffers (mean, variance and the count behind them, in float64 so
    that long runs do not drift), so they are saved, loaded and exported with the
    agent rather than with an env wrapper. They change only through `update`, which
    the training loop calls with each observation the agent acts on; the forward pass
    reads them and never changes them, so evaluation, `predict` and exports see frozen
    statistics.

    Args:
        size: observation width.
        clip: normalised values are clipped to [-clip, clip].
        eps: added to the variance before the square root.
    """

    def __init__(self, size: int, *, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        # A tiny prior count, as Stable-Baselines3's RunningMeanStd: the first batch
        # then sets the statistics almost alone, without a division by zero.
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, observations: torch.Tensor) -> None:
        """Merge a batch `(n, size)` into the statistics (Chan et al.'s parallel rule)."""
        batch = observations.to(torch.float64).reshape(-1, self.mean.shape[0])
        n = batch.shape[0]
        batch_mean = batch.mean(dim=0)
        batch_var = batch.var(dim=0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.var.copy_(
            (self.var * self.count + batch_var * n + delta.square() * self.count * n / total)
            / total
        )
        self.count.copy_(total)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(self.var + self.eps).to(observations.dtype)
        centred = observations - self.mean.to(observations.dtype)
        return (centred * scale).clamp(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"{self.mean.shape[0]}, clip={self.clip}"
