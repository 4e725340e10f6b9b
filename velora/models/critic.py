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

        self.register_load_state_dict_post_hook(_zero_masked_weights)

    def masks(self) -> list[torch.Tensor]:
        return [self.mask0, self.mask1, self.mask2]

    def forward(self, x: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """`x` is `(batch, in_features)`, shared by every critic.

        `frozen=True` treats the weights as constants: gradients still flow to `x` (the
        actor's actions) but none are computed for the critics' own parameters, which
        the actor loss must not train anyway.

        Weights outside the masks are exactly zero (set so at construction and after
        loading; their gradients are masked), so only a pass that computes weight
        gradients multiplies by the masks: that is what keeps those gradients masked.
        """
        train_weights = not frozen and torch.is_grad_enabled()
        h = x.expand(self.n_critics, *x.shape)
        last = len(self.weights) - 1
        for i, (weight, bias, mask) in enumerate(
            zip(self.weights, self.biases, self.masks(), strict=True)
        ):
            if train_weights:
                weight = weight * mask
            elif frozen:
                weight, bias = weight.detach(), bias.detach()
            h = torch.baddbmm(bias, h, weight.transpose(1, 2))
            if i < last:
                h = mish(h)
        return h


def _zero_masked_weights(module: CriticEnsemble, incompatible_keys: object) -> None:
    """Hold the zero-outside-the-mask invariant for whatever weights were loaded."""
    with torch.no_grad():
        for weight, mask in zip(module.weights, module.masks(), strict=True):
            weight.mul_(mask)
