"""Small helpers every layer uses: seeding, devices, tensors, parameter counts."""

from velora.utils.core import set_device, set_seed
from velora.utils.torch import (
    active_parameters,
    hard_update,
    soft_update,
    stack_tensor,
    to_tensor,
    total_parameters,
)

__all__ = [
    "set_seed",
    "set_device",
    "to_tensor",
    "stack_tensor",
    "soft_update",
    "hard_update",
    "total_parameters",
    "active_parameters",
]
