"""Twin (or n) sparse NCP critics evaluated as one batched module."""

from typing import NamedTuple

import torch
from torch import nn

from velora.nn import NCPNetwork
from velora.nn.activation import MishTerms, mish_backward, mish_with_terms
from velora.nn.sparse import masked_weight_grad


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

        `frozen=True` treats the weights as constants: gradients still flow to `x` but
        none are computed for the critics' own parameters.

        Weights outside the masks are exactly zero (set so at construction and after
        loading); where autograd records the pass they are multiplied by the masks, so
        their gradients are zero too and they stay zero under any optimiser. The
        autograd losses come here; the hand-written update uses `forward_saved` and
        `backward`.
        """
        weights, biases = list(self.weights), list(self.biases)
        if frozen:
            weights = [w.detach() for w in weights]
            biases = [b.detach() for b in biases]
        elif torch.is_grad_enabled():
            weights = [w * mask for w, mask in zip(weights, self.masks(), strict=True)]
        return _stack_forward(x, weights, biases)[0]

    def forward_saved(self, x: torch.Tensor) -> tuple[torch.Tensor, "CriticTape"]:
        """`forward` without autograd, and what `backward` needs: for hand-written updates."""
        with torch.no_grad():
            weights = list(self.weights)
            output, inputs, terms = _stack_forward(x, weights, list(self.biases))
        return output, CriticTape(inputs, terms, weights)

    def backward(
        self,
        tape: "CriticTape",
        grad: torch.Tensor,
        *,
        x_grad: bool | slice,
        params: bool,
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """The gradients of a `forward_saved` pass, from `grad` w.r.t. its output.

        Returns the gradient w.r.t. `x` (None unless `x_grad`; a slice asks for those
        columns only, e.g. the action's) and, with `params`, the weight then bias
        gradients in `parameters()` order (else an empty list).
        """
        with torch.no_grad():
            return _stack_backward(tape, grad, self.masks() if params else None, x_grad)


class CriticTape(NamedTuple):
    """A `forward_saved` pass: each layer's input, Mish's terms, the weights used."""

    inputs: list[torch.Tensor]
    terms: list[MishTerms]
    weights: list[torch.Tensor]


def _stack_forward(
    x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[MishTerms]]:
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


def _stack_backward(
    tape: CriticTape,
    grad: torch.Tensor,
    masks: list[torch.Tensor] | None,
    x_grad: bool | slice,
) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """The chain rule of `_stack_forward`: the input's gradient if `x_grad` (its columns
    if a slice), and the weight (masked) then bias gradients if `masks` are given."""
    weight_grads: list[torch.Tensor] = []
    bias_grads: list[torch.Tensor] = []
    for i in reversed(range(len(tape.weights))):
        if masks is not None:
            weight_grads.append(masked_weight_grad(grad, tape.inputs[i], masks[i]))
            bias_grads.append(grad.sum(dim=1, keepdim=True))
        if i == 0:
            break
        grad = mish_backward(torch.bmm(grad, tape.weights[i]), tape.terms[i - 1])
    params = weight_grads[::-1] + bias_grads[::-1]
    if x_grad is False:
        return None, params
    weights = tape.weights[0] if x_grad is True else tape.weights[0][..., x_grad]
    # The sum over critics as a chain of matrix products: on these narrow inputs a
    # `bmm` and a `sum` take longer.
    grads, weights = grad.unbind(), weights.unbind()
    x_grad_sum = torch.mm(grads[0], weights[0])
    for critic_grad, weight in zip(grads[1:], weights[1:], strict=True):
        x_grad_sum = torch.addmm(x_grad_sum, critic_grad, weight)
    return x_grad_sum, params


def _zero_masked_weights(module: CriticEnsemble, incompatible_keys: object) -> None:
    """Hold the zero-outside-the-mask invariant for whatever weights were loaded."""
    with torch.no_grad():
        for weight, mask in zip(module.weights, module.masks(), strict=True):
            weight.mul_(mask)
