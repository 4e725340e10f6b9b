"""Tensor conversion, cached scalars, target-network updates, parameter counts, compiling."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from velora.utils.torch_private import lerp_all_


def to_tensor(
    items: Any, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Convert a list, NumPy array, scalar or tensor into a tensor of `dtype` on `device`."""
    if isinstance(items, torch.Tensor):
        return items.to(dtype=dtype, device=device)
    return torch.as_tensor(items, dtype=dtype, device=device)


def stack_tensor(
    items: Sequence[Any],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Stack a sequence of tensors (or array-likes) along a new first dimension."""
    return torch.stack([to_tensor(item, dtype=dtype, device=device) for item in items])


_SCALARS: dict[tuple[float, torch.dtype, torch.device], torch.Tensor] = {}


def scalar_like(value: float, like: torch.Tensor) -> torch.Tensor:
    """`value` as a 0-dim tensor of `like`'s dtype and device, made once and reused.

    An op given a Python number wraps it in a tensor and casts it on every call, which
    costs more on a CPU than the op itself on the small tensors of these networks.
    Compiled code makes the constant in its graph, which folds it in.
    """
    if torch.compiler.is_compiling():
        return torch.full((), value, dtype=like.dtype, device=like.device)
    key = (value, like.dtype, like.device)
    scalar = _SCALARS.get(key)
    if scalar is None:
        with torch.inference_mode(False):  # usable everywhere, autograd included
            scalar = _SCALARS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return scalar


@torch.no_grad()
def soft_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """Polyak update in place: target <- tau * source + (1 - tau) * target."""
    source_params = list(source.parameters())
    target_params = list(target.parameters())
    if len(source_params) != len(target_params):
        raise ValueError("soft_update needs two modules with the same parameters.")
    lerp_all_(target_params, source_params, tau)


@torch.no_grad()
def hard_update(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of `source` into `target`."""
    target.load_state_dict(source.state_dict())


def total_parameters(module: nn.Module) -> int:
    """Number of trainable parameters, masked ones included."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def active_parameters(module: nn.Module) -> int:
    """Number of non-zero trainable parameters: what a sparse network really uses."""
    return sum(int(torch.count_nonzero(p)) for p in module.parameters() if p.requires_grad)


Fn = TypeVar("Fn", bound=Callable[..., Any])


def compile_function(fn: Fn, *, dynamic: bool | None = False, **inductor_options: Any) -> Fn:
    """`torch.compile(fn)` with the settings every compiled part of an agent shares.

    Random ops call the eager generator (inductor's `fallback_random`), so a seeded run
    draws the same numbers compiled or not. Shapes are static by default (a run's batch
    size is fixed; another one compiles once more); `dynamic=None` lets PyTorch switch a
    dimension to dynamic after its first change. `inductor_options` add to or override
    the inductor options (e.g. `cpp_wrapper=True`).
    """
    options = {"fallback_random": True, **inductor_options}
    return torch.compile(fn, dynamic=dynamic, options=options)
