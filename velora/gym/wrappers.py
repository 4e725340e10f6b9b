"""Wrapper stacks that turn a NumPy Gymnasium env into one an agent can feed on directly."""

from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import NumpyToTorch, RecordEpisodeStatistics, TransformObservation
from gymnasium.wrappers.numpy_to_torch import numpy_to_torch

from velora.gym.make import make_env

WrapperFactory = Callable[[gym.Env], gym.Env]


def wrap_gym_env(env_or_id: gym.Env | str, wrappers: Sequence[WrapperFactory]) -> gym.Env:
    """Apply wrappers (classes or `functools.partial`s of them) in order, innermost first.

    Given an id, the env is made with `make_env`, so unusable envs fail early.
    """
    env = make_env(env_or_id) if isinstance(env_or_id, str) else env_or_id
    for wrapper in wrappers:
        if not callable(wrapper):
            raise TypeError(f"Wrappers must be callables taking an env, got {wrapper!r}.")
        env = wrapper(env)
    return env


def _to_float32(obs: np.ndarray) -> np.ndarray:
    """Module-level (not a lambda) so wrapped envs stay picklable."""
    return np.asarray(obs, dtype=np.float32)


def _float32_box(space: spaces.Box) -> spaces.Box:
    """The same bounds as float32, cast up front so Box prints no precision warning."""
    return spaces.Box(
        low=space.low.astype(np.float32),
        high=space.high.astype(np.float32),
        shape=space.shape,
        dtype=np.float32,
    )


#: dtypes `torch.asarray` gives Python scalars (a float gets torch's default dtype).
_SCALAR_DTYPES = {bool: torch.bool, int: torch.int64, float: None}


def _to_torch(value: Any, device: torch.device | None) -> Any:
    """`value` as Gymnasium's `numpy_to_torch` converts it, without its dispatch for the
    common cases: a writable numeric array or NumPy scalar, or a Python number."""
    kind = type(value)
    if kind in _SCALAR_DTYPES:
        return torch.scalar_tensor(value, dtype=_SCALAR_DTYPES[kind], device=device)
    if (kind is np.ndarray and value.flags.writeable or isinstance(value, np.generic)) and (
        value.dtype.kind in "biuf"
    ):
        return torch.from_numpy(np.asarray(value)).to(device)  # shares memory, as DLPack does
    return numpy_to_torch(value, device=device)


class _NumpyToTorch(NumpyToTorch):
    """`NumpyToTorch` whose `step` and `reset` convert a tensor action and the results directly.

    Gymnasium's conversion dispatches every value through `functools.singledispatch` and
    the array API, which costs more than a small env's own step (MuJoCo envs return
    several info values every step). The results are the same: the action as a NumPy
    view of the tensor, the observation and info values as tensors on `device`, a float
    reward and bool flags.
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if not isinstance(action, torch.Tensor):
            return super().step(action)
        obs, reward, terminated, truncated, info = self.env.step(action.numpy(force=True))
        device = self._target_device
        info = {key: _to_torch(value, device) for key, value in info.items()}
        return _to_torch(obs, device), float(reward), bool(terminated), bool(truncated), info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if options:  # converted to NumPy first, by Gymnasium
            return super().reset(seed=seed, options=options)
        obs, info = self.env.reset(seed=seed, options=options)
        device = self._target_device
        return _to_torch(obs, device), {
            key: _to_torch(value, device) for key, value in info.items()
        }


def add_core_env_wrappers(env: gym.Env, device: torch.device | str) -> gym.Env:
    """Episode statistics, float32 observations and torch tensors on `device` in/out.

    Agents get float32 torch observations without copying or casting themselves, and
    `info["episode"]` carries the return and length when an episode ends.
    """
    obs_space = env.observation_space
    if not isinstance(obs_space, spaces.Box):
        raise ValueError(
            f"add_core_env_wrappers needs a Box observation space, got {type(obs_space).__name__}."
        )
    env = RecordEpisodeStatistics(env)
    env = TransformObservation(env, _to_float32, _float32_box(obs_space))
    return _NumpyToTorch(env, device=torch.device(device))
