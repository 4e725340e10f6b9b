"""Partially observed versions of Gymnasium tasks: hidden components, noisy sensors,
dropped observations.

`partially_observed("CartPole-v1", hide="velocities")` returns an env id,
`PO/CartPole-hide-1-3-v1`, that every part of Velora takes like any other: agents,
saves, `velora train`. The id says everything about the wrappers, so a fresh process
rebuilds the env from the id alone (`make_env` registers such ids on first use).
"""

import re
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from velora.gym.names import velocity_components

NAMESPACE = "PO"
#: `PO/<Name>[-hide-<i>-<j>...][-noise-<std>][-drop-<rate>]-v<version>`
_ID = re.compile(
    rf"^{NAMESPACE}/(?P<name>[A-Za-z0-9_]+)"
    r"(?:-hide(?P<hide>(?:-\d+)+))?"
    r"(?:-noise-(?P<noise>[0-9.e+-]+?))?"
    r"(?:-drop-(?P<drop>[0-9.e+-]+?))?"
    r"-v(?P<version>\d+)$"
)


class HideComponents(gym.ObservationWrapper):
    """Removes the observation components at `hide` (a velocity, a sensor): the agent
    sees the others only, in their order."""

    def __init__(self, env: gym.Env, hide: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        size = space.shape[0]
        self.hide = tuple(sorted(set(hide)))
        self.keep = np.array([i for i in range(size) if i not in self.hide], dtype=np.int64)
        self.observation_space = spaces.Box(
            space.low[self.keep], space.high[self.keep], dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


class _SeededWrapper(gym.ObservationWrapper):
    """Draws its own random numbers, seeded by `reset(seed=...)`, so the env's own
    randomness (start states) is the same with or without the wrapper."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x5EED])
        return super().reset(seed=seed, options=options)


class ObservationNoise(_SeededWrapper):
    """Adds Gaussian noise of standard deviation `std` to every observation component."""

    def __init__(self, env: gym.Env, std: float) -> None:
        super().__init__(env)
        self.std = std
        shape, dtype = env.observation_space.shape, env.observation_space.dtype
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=shape, dtype=dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._rng.normal(0.0, self.std, size=observation.shape)
        return (observation + noise).astype(observation.dtype)


class DropObservations(_SeededWrapper):
    """Replaces an observation by zeros with probability `rate`, as a sensor that drops
    out; the first observation of an episode always arrives."""

    def __init__(self, env: gym.Env, rate: float) -> None:
        super().__init__(env)
        self.rate = rate
        shape, dtype = env.observation_space.shape, env.observation_space.dtype
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=shape, dtype=dtype)
        self._resetting = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._resetting = True
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self._resetting = False

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if not self._resetting and self._rng.random() < self.rate:
            return np.zeros_like(observation)
        return observation


def make_partially_observed(
    base_id: str,
    hide: Sequence[int] = (),
    noise_std: float = 0.0,
    drop_rate: float = 0.0,
    **kwargs: Any,
) -> gym.Env:
    """The entry point of `PO/...` ids: `base_id` made by Gymnasium, then the wrappers
    (hide, then noise, then drop)."""
    env = gym.make(base_id, **kwargs)
    if hide:
        env = HideComponents(env, hide)
    if noise_std:
        env = ObservationNoise(env, noise_std)
    if drop_rate:
        env = DropObservations(env, drop_rate)
    return env


def _number(value: float) -> str:
    return f"{value:g}"


def partially_observed(
    env_id: str,
    *,
    hide: Sequence[int] | str = (),
    noise_std: float = 0.0,
    drop_rate: float = 0.0,
) -> str:
    """The id of `env_id` with components hidden, noise added or observations dropped.

    Args:
        env_id: a registered Gymnasium id without a namespace, e.g. "CartPole-v1".
        hide: observation components to remove (indices), or "velocities" for the
            components Gymnasium's documentation names as velocities.
        noise_std: standard deviation of Gaussian noise added to every component.
        drop_rate: probability that an observation arrives as zeros.

    Returns:
        `PO/<Name>[-hide-<i>...][-noise-<std>][-drop-<rate>]-v<version>`, registered.
    """
    if env_id not in gym.registry:
        from velora.gym.make import make_env

        make_env(env_id)  # the error names the closest registered ids
    spec = gym.spec(env_id)
    if spec.namespace is not None:
        raise ValueError(f"partially_observed takes ids without a namespace, got {env_id!r}.")
    size = _observation_size(env_id)
    if isinstance(hide, str):
        if hide != "velocities":
            raise ValueError(f"hide must be component indices or 'velocities', got {hide!r}.")
        hide = velocity_components(spec.name)
        if not hide:
            raise ValueError(
                f"no velocity components are known for {env_id}; pass their indices as hide=[...]."
            )
    hide = tuple(sorted(set(int(i) for i in hide)))
    missing = [i for i in hide if not 0 <= i < size]
    if missing:
        raise ValueError(
            f"cannot hide component(s) {missing} of {env_id}: its observations have {size} "
            f"components, 0..{size - 1}."
        )
    if len(hide) == size:
        raise ValueError(f"hiding all {size} components of {env_id} leaves nothing to observe.")
    if not noise_std >= 0.0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}.")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}.")
    if not (hide or noise_std or drop_rate):
        raise ValueError("partially_observed needs hide, noise_std or drop_rate.")
    new_id = f"{NAMESPACE}/{spec.name}"
    if hide:
        new_id += "-hide-" + "-".join(str(i) for i in hide)
    if noise_std:
        new_id += f"-noise-{_number(noise_std)}"
    if drop_rate:
        new_id += f"-drop-{_number(drop_rate)}"
    new_id += f"-v{spec.version}"
    _register(new_id, env_id, hide, float(noise_std), float(drop_rate))
    return new_id


def _observation_size(env_id: str) -> int:
    env = gym.make(env_id)
    space = env.observation_space
    env.close()
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{env_id} observations are not a 1-D Box: {space}.")
    return space.shape[0]


def _register(new_id: str, base_id: str, hide, noise_std: float, drop_rate: float) -> None:
    if new_id in gym.registry:
        return
    gym.register(
        id=new_id,
        entry_point="velora.gym.partial:make_partially_observed",
        kwargs={
            "base_id": base_id,
            "hide": list(hide),
            "noise_std": noise_std,
            "drop_rate": drop_rate,
        },
        # The base env brings its own time limit and checker.
        max_episode_steps=None,
        disable_env_checker=True,
    )


def base_env_id(env_id: str) -> str:
    """The fully observed env a `PO/...` id wraps ("PO/CartPole-hide-1-3-v1" ->
    "CartPole-v1"); any other id is its own base."""
    match = _ID.match(env_id)
    return env_id if match is None else f"{match['name']}-v{match['version']}"


def register_from_id(env_id: str) -> bool:
    """Register a `PO/...` id from its text (what a saved agent names); False if it is
    not one. Only numbers are read from the id, and only the wrappers here are used."""
    match = _ID.match(env_id)
    if match is None:
        return False
    base_id = base_env_id(env_id)
    hide = [int(i) for i in match["hide"].strip("-").split("-")] if match["hide"] else []
    rebuilt = partially_observed(
        base_id,
        hide=hide,
        noise_std=float(match["noise"] or 0.0),
        drop_rate=float(match["drop"] or 0.0),
    )
    if rebuilt != env_id:  # e.g. "-noise-0.10": not the canonical spelling
        raise ValueError(f"{env_id!r} is not a canonical partially observed id; use {rebuilt!r}.")
    return True
