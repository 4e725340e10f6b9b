"""Seeding and device selection."""

import random

import numpy as np
import torch


def set_seed(seed: int | None = None) -> int:
    """Seed Python, NumPy and PyTorch; draws a random seed when `seed` is None.

    Returns the seed used, so a run started without one can still be repeated.
    """
    if seed is None:
        seed = random.SystemRandom().randrange(0, 2**31 - 1)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def set_device(name: str | torch.device | None = None) -> torch.device:
    """The torch device to use: `name` if given, else `cuda:0` when available, else `cpu`."""
    if name is None:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} was requested but CUDA is not available; "
            "use device='cpu' or leave it as None."
        )
    return device
