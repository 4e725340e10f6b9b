"""Twin (or n) sparse NCP critics evaluated as one module."""

import torch
from torch import nn

from velora.nn import NCPNetwork


class CriticEnsemble(nn.Module):
    """`n_critics` independent NCP critics whose outputs come back stacked.

    Each critic has its own wiring (seed + i) and weights. `forward` returns
    `(n_critics, batch, out_features)`, so the clipped double-Q target is one `min(0)`.
    """

    def __init__(
        self,
        in_features: int,
        n_neurons: int,
        out_features: int,
        *,
        n_critics: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.critics = nn.ModuleList(
            NCPNetwork(in_features, n_neurons, out_features, seed=seed + i)
            for i in range(n_critics)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([critic(x) for critic in self.critics])
