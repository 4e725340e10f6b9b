"""Twin (or n) sparse NCP critics evaluated as one batched module."""

import torch
from torch import nn

from velora.nn import NCPNetwork
from velora.nn.activation import mish


class CriticEnsemble(nn.Module):
    """`n_critics` independent NCP critics run as one stack of batched matrix products.

    Each critic has its own wiring (seed + i) and initial weights, exactly those of an
    `NCPNetwork`; the layers' weights, biases and masks are stacked along a leading
    critic dimension so the whole ensemble costs one `baddbmm` per layer instead of one
    matmul per layer per critic. `forward` returns `(n_critics, batch, out_features)`,
    so the clipped double-Q target is one `min(0)`.
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
        if n_critics < 1:
            raise ValueError(f"n_critics must be at least 1, got {n_critics}.")
        self.n_critics = n_critics
        networks = [
            NCPNetwork(in_features, n_neurons, out_features, seed=seed + i)
            for i in range(n_critics)
        ]
        self.wirings = [network.wiring for network in networks]
        layers = [[network.layers[i] for network in networks] for i in (0, 2, 4)]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layer.weight.detach() for layer in stack]))
            for stack in layers
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([layer.bias.detach() for layer in stack]).unsqueeze(1))
            for stack in layers
        )
        for i, stack in enumerate(layers):
            self.register_buffer(f"mask{i}", torch.stack([layer.mask for layer in stack]))

    def masks(self) -> list[torch.Tensor]:
        return [self.mask0, self.mask1, self.mask2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` is `(batch, in_features)`, shared by every critic."""
        h = x.expand(self.n_critics, *x.shape)
        last = len(self.weights) - 1
        for i, (weight, bias, mask) in enumerate(
            zip(self.weights, self.biases, self.masks(), strict=True)
        ):
            h = torch.baddbmm(bias, h, (weight * mask).transpose(1, 2))
            if i < last:
                h = mish(h)
        return h
