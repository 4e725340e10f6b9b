"""A linear layer with a fixed connection mask."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class SparseLinear(nn.Module):
    """`nn.Linear` whose weight is multiplied by a fixed 0/1 mask.

    Masked weights are zeroed at construction and after loading a state dict, and receive
    zero gradient, so they stay exactly zero through training with any optimiser (fused
    code such as the liquid step relies on it and skips the mask). The mask is a buffer
    (it moves with `.to()` and is saved in `state_dict`) and never a parameter.

    Args:
        mask: `(out_features, in_features)` tensor of zeros and ones.
        bias: whether to add a learnable bias.
    """

    def __init__(self, mask: torch.Tensor, *, bias: bool = True) -> None:
        super().__init__()
        if mask.dim() != 2:
            raise ValueError(f"mask must be 2-D (out_features, in_features), got {mask.shape}.")
        out_features, in_features = mask.shape
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("mask", mask.detach().clone().float())
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()
        self.register_load_state_dict_post_hook(_zero_masked_weight)

    def reset_parameters(self) -> None:
        """`nn.Linear`'s initialisation, scaled to the real fan-in of each neuron."""
        fan_in = self.mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        bound = 1.0 / torch.sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_(bound).mul_(self.mask)
            if self.bias is not None:
                self.bias.uniform_(-1.0, 1.0).mul_(1.0 / math.sqrt(self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        active = int(self.mask.sum())
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"active={active}/{self.mask.numel()}"
        )


def masked_weight_grad(
    grad: torch.Tensor, inputs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """A sparse layer's weight gradient, `grad^T @ inputs` times the mask, for a
    hand-written backward: `(batch, out)` and `(batch, in)` give `(out, in)`; stacks of
    layers (a leading dimension on all three) give one gradient per layer.

    Where the layer widens (more outputs than inputs) the transposed product is
    computed instead, the cheaper of the two on a CPU; multiplying by the mask first
    lays the result out like the weight either way.
    """
    if grad.shape[-1] > inputs.shape[-1]:
        return torch.mul(mask, (inputs.transpose(-1, -2) @ grad).transpose(-1, -2))
    return (grad.transpose(-1, -2) @ inputs).mul_(mask)


def _zero_masked_weight(module: SparseLinear, incompatible_keys: object) -> None:
    """Hold the zero-outside-the-mask invariant for whatever weight was loaded."""
    with torch.no_grad():
        module.weight.mul_(module.mask)
