"""Wrapper stacks that turn a NumPy Gymnasium env into one an agent can feed on directly."""

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.wrappers import NumpyToTorch, RecordEpisodeStatistics, TransformObservation

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
    return NumpyToTorch(env, device=torch.device(device))
