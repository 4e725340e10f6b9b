"""Twin (or n) sparse NCP critics evaluated as one batched module."""

import torch
from torch import nn

from velora.nn import NCPNetwork
from velora.nn.activation import mish_backward, mish_with_terms


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
        loading), so the forward uses them as they are and only the weight gradients
        are multiplied by the masks, which keeps those weights at zero.
        """
        weights, biases = list(self.weights), list(self.biases)
        if frozen:
            weights = [w.detach() for w in weights]
            biases = [b.detach() for b in biases]
        if torch.is_grad_enabled() and (x.requires_grad or not frozen):
            # One autograd node for the whole stack instead of ~20 small ones.
            return _StackedCritics.apply(x, self.masks(), *weights, *biases)
        return _stack_forward(x, weights, biases)[0]


def _stack_forward(
    x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[torch.Tensor, ...]]]:
    """The layers without autograd: the output, each layer's input, and Mish's terms."""
    h = x.expand(weights[0].shape[0], *x.shape)
    inputs, terms = [h], []
    for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        h = torch.baddbmm(bias, h, weight.transpose(1, 2))
        if i < len(weights) - 1:
            h, mish_terms = mish_with_terms(h)
            inputs.append(h)
            terms.append(mish_terms)
    return h, inputs, terms


class _StackedCritics(torch.autograd.Function):
    """The ensemble's layers (batched matmul, Mish, ..., batched matmul) as one node.

    For networks this small the autograd graph's per-node cost outweighs the
    arithmetic; the backward here is the chain rule written out once, with the weight
    gradients masked (`tests/test_update_reference.py` checks it against autograd).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, masks: list[torch.Tensor], *params: torch.Tensor):
        n_layers = len(params) // 2
        weights, biases = list(params[:n_layers]), list(params[n_layers:])
        output, inputs, terms = _stack_forward(x, weights, biases)
        ctx.masks, ctx.inputs, ctx.terms, ctx.weights = masks, inputs, terms, weights
        return output

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n_layers = len(ctx.weights)
        needs = ctx.needs_input_grad
        weight_grads: list[torch.Tensor | None] = [None] * n_layers
        bias_grads: list[torch.Tensor | None] = [None] * n_layers
        x_grad = None
        for i in reversed(range(n_layers)):
            if needs[2 + i]:
                weight_grads[i] = torch.bmm(grad.transpose(1, 2), ctx.inputs[i]).mul_(ctx.masks[i])
            if needs[2 + n_layers + i]:
                bias_grads[i] = grad.sum(dim=1, keepdim=True)
            if i > 0:
                grad = mish_backward(torch.bmm(grad, ctx.weights[i]), ctx.terms[i - 1])
            elif needs[0]:
                x_grad = torch.bmm(grad, ctx.weights[0]).sum(dim=0)
        del ctx.inputs, ctx.terms  # free the activations as soon as they are used
        return x_grad, None, *weight_grads, *bias_grads


def _zero_masked_weights(module: CriticEnsemble, incompatible_keys: object) -> None:
    """Hold the zero-outside-the-mask invariant for whatever weights were loaded."""
    with torch.no_grad():
        for weight, mask in zip(module.weights, module.masks(), strict=True):
            weight.mul_(mask)
