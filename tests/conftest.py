"""Shared fixtures: run every test in a temp dir, and tiny custom Gymnasium envs."""

import functools
import itertools
import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

# MLflow 3 reports usage to its telemetry server from a background thread; tests (and
# the Ray workers they start, which inherit the environment) make no connections.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

_ids = itertools.count()


class TinyEnv(gym.Env):
    """A 1-D Box-observation env with any action space.

    `step` rejects actions outside the action space, so an agent that hands the env an
    out-of-bounds action fails loudly. Episodes end after `episode_len` steps.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        action_space: spaces.Space,
        obs_dim: int = 3,
        episode_len: int = 10,
        render_mode: str | None = None,
    ) -> None:
        self.action_space = action_space
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(obs_dim,), dtype=np.float32)
        self.episode_len = episode_len
        self.render_mode = render_mode
        self.t = 0

    def _obs(self) -> np.ndarray:
        return self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        self.t += 1
        reward = float(np.sum(np.asarray(action, dtype=np.float64))) * 0.1
        return self._obs(), reward, self.t >= self.episode_len, False, {}


BOX_SPACE = spaces.Box(
    low=np.array([-2.0, 0.0], dtype=np.float32),
    high=np.array([5.0, 10.0], dtype=np.float32),
    dtype=np.float32,
)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """`train()` writes `metrics.db` into the working directory: keep it in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def register_env() -> Callable[..., str]:
    """Register a `TinyEnv` with the given action space; returns its id.

    Ids are unique per call and unregistered after the test.
    """
    registered: list[str] = []

    def register(action_space: spaces.Space, **kwargs) -> str:
        env_id = f"VeloraTiny{next(_ids)}-v0"
        gym.register(id=env_id, entry_point=functools.partial(TinyEnv, action_space, **kwargs))
        registered.append(env_id)
        return env_id

    yield register
    for env_id in registered:
        gym.registry.pop(env_id, None)


@pytest.fixture
def box_env_id(register_env) -> str:
    """A `Box(low=[-2, 0], high=[5, 10])` action space."""
    return register_env(BOX_SPACE)


@pytest.fixture
def discrete_env_id(register_env) -> str:
    """A `Discrete(3, start=-1)` action space: actions -1, 0, 1."""
    return register_env(spaces.Discrete(3, start=-1))


@pytest.fixture
def multidiscrete_env_id(register_env) -> str:
    return register_env(spaces.MultiDiscrete([3, 2]))


@pytest.fixture
def dict_env_id(register_env) -> str:
    return register_env(
        spaces.Dict({"move": spaces.Discrete(2), "force": spaces.Box(-1.0, 1.0, shape=(1,))})
    )
