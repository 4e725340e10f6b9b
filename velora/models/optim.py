"""Optimisers for the agent: built fused where they can be, stepped with given gradients.

`make_optimizer` builds the user's `torch.optim` class (fused where it can be);
`apply_gradients` steps it with gradients computed outside it (by the hand-written
update or `torch.autograd.grad`). Fused Adam/AdamW with plain options are stepped by
calling their kernel directly (`velora.utils.torch_private`); everything else takes the
ordinary `step()`.
"""

from collections.abc import Sequence
from inspect import signature
from typing import Any

import torch

from velora.utils.torch_private import fused_adam_step


def make_optimizer(
    optim: type[torch.optim.Optimizer], params: Any, lr: float
) -> torch.optim.Optimizer:
    """`optim(params, lr)`, fused into one kernel per step where the class supports it."""
    params = list(params)
    if "fused" in signature(optim).parameters:
        try:
            return optim(params, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # e.g. a dtype or device without a fused kernel
            pass
    return optim(params, lr=lr)


def optimized_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters `optimizer` steps, in the order `apply_gradients` takes gradients."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def apply_gradients(optimizer: torch.optim.Optimizer, grads: Sequence[torch.Tensor]) -> None:
    """One step of `optimizer` with `grads`, one per parameter in `param_groups` order.

    The gradients are not left on the parameters' `.grad`. Each is laid out like its
    parameter first: `torch.autograd.grad` may return a transposed layout, which the
    fused CPU Adam kernel reads as if it were the parameter's (element for element in
    memory order), so the steps would land on the wrong weights.
    """
    grads = [grad.contiguous() for grad in grads]
    if fused_adam_step(optimizer, grads):
        return
    params = optimized_params(optimizer)
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad
    optimizer.step()
    for param in params:
        param.grad = None
