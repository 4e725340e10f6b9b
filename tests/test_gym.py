"""velora.gym against real Gymnasium environments."""

import functools
import os
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.error import DependencyNotInstalled
from gymnasium.wrappers import (
    ClipAction,
    NumpyToTorch,
    RecordEpisodeStatistics,
    TimeLimit,
    TransformReward,
)

from velora.gym import (
    EnvResult,
    EnvSearch,
    add_core_env_wrappers,
    configure_headless_rendering,
    env_name,
    make_env,
    wrap_gym_env,
)
from velora.gym import search as search_module


class _OddActionEnv(gym.Env):
    """A flat-observation env whose action space NeuroFlow cannot drive."""

    def __init__(self, action_space: spaces.Space, render_mode: str | None = None):
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, True, False, {}


@pytest.fixture
def odd_action_ids():
    ids = {
        "MultiDiscrete": ("VeloraTest/MultiDiscreteAction-v0", spaces.MultiDiscrete([2, 3])),
        "Dict": ("VeloraTest/DictAction-v0", spaces.Dict({"a": spaces.Discrete(2)})),
    }
    for env_id, space in ids.values():
        gym.register(id=env_id, entry_point=functools.partial(_OddActionEnv, space))
    yield {kind: env_id for kind, (env_id, _) in ids.items()}
    for env_id, _ in ids.values():
        del gym.registry[env_id]


def test_unknown_id_suggests_close_ids():
    with pytest.raises(ValueError, match="'CartPol-v1'") as err:
        make_env("CartPol-v1")
    assert "Did you mean" in str(err.value) and "'CartPole-v1'" in str(err.value)


def test_unknown_id_suggestion_ignores_case():
    with pytest.raises(ValueError, match="'LunarLander-v3'"):
        make_env("lunarlander-v3")


@pytest.mark.parametrize("kind", ["MultiDiscrete", "Dict"])
def test_unsupported_action_space_rejected(odd_action_ids, kind):
    with pytest.raises(ValueError, match=rf"{kind} action space.*Discrete or Box"):
        make_env(odd_action_ids[kind])


@pytest.mark.parametrize(
    ("env_id", "match"),
    [("FrozenLake-v1", "Discrete observation"), ("CarRacing-v3", r"shape \(96, 96, 3\)")],
)
def test_non_flat_box_observation_rejected(env_id, match):
    with pytest.raises(ValueError, match=match):
        make_env(env_id)


def test_missing_dependency_names_pip_extra(monkeypatch):
    import gymnasium.envs.box2d.lunar_lander as lunar_lander

    def missing(**kwargs):
        raise DependencyNotInstalled("Box2D is not installed")

    monkeypatch.setattr(lunar_lander, "LunarLander", missing)
    with pytest.raises(DependencyNotInstalled, match=r"gymnasium\[box2d\]"):
        make_env("LunarLander-v3")


def test_make_env_passes_options():
    env = make_env("Pendulum-v1", max_episode_steps=3)
    env.reset(seed=0)
    steps = [env.step(env.action_space.sample()) for _ in range(3)]
    assert steps[-1][3] and not any(s[3] for s in steps[:-1])


@pytest.mark.parametrize(
    ("env_id", "name"),
    [
        ("InvertedPendulum-v5", "InvertedPendulum"),
        ("phys2d/CartPole-v1", "CartPole"),
        ("LunarLanderContinuous-v3", "LunarLanderContinuous"),
        ("MyEnv", "MyEnv"),
    ],
)
def test_env_name(env_id, name):
    assert env_name(env_id) == name


def test_wrap_gym_env_applies_wrappers_in_order():
    wrappers = [
        ClipAction,
        RecordEpisodeStatistics,
        functools.partial(TimeLimit, max_episode_steps=4),
    ]
    env = wrap_gym_env("Pendulum-v1", wrappers)
    assert [type(env), type(env.env), type(env.env.env)] == [
        TimeLimit,
        RecordEpisodeStatistics,
        ClipAction,
    ]
    env.reset(seed=0)
    truncated = [env.step(np.array([5.0], np.float32))[3] for _ in range(4)]
    assert truncated == [False, False, False, True]


def test_wrap_gym_env_accepts_an_env():
    base = gym.make("CartPole-v1")
    env = wrap_gym_env(base, [functools.partial(TransformReward, func=lambda r: 2 * r)])
    env.reset(seed=0)
    assert env.step(0)[1] == 2.0 and env.env is base


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_core_wrappers_give_float32_tensors_and_episode_stats(env_id):
    env = add_core_env_wrappers(make_env(env_id, max_episode_steps=50), torch.device("cpu"))
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32 and obs.ndim == 1
    discrete = isinstance(env.action_space, spaces.Discrete)
    steps, total, done, info = 0, 0.0, False, {}
    while not done:
        action = torch.tensor(1) if discrete else torch.zeros(env.action_space.shape)
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs.dtype == torch.float32 and obs.device.type == "cpu"
        steps, total = steps + 1, total + reward
        done = terminated or truncated
    assert "episode" in info
    assert int(info["episode"]["l"]) == steps
    assert float(info["episode"]["r"]) == pytest.approx(total)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5", "HalfCheetah-v5"])
def test_core_wrappers_convert_like_gymnasium(env_id):
    """The direct conversion gives what Gymnasium's `NumpyToTorch` gives, info included."""
    ours = add_core_env_wrappers(make_env(env_id), "cpu")
    # The same stack with Gymnasium's own conversion on top.
    theirs = NumpyToTorch(add_core_env_wrappers(make_env(env_id), "cpu").env, device="cpu")
    results = [env.reset(seed=0) for env in (ours, theirs)]
    ours.action_space.seed(0)
    for _ in range(30):
        action = torch.as_tensor(ours.action_space.sample())
        results += [ours.step(action), theirs.step(action)]
    for mine, ref in zip(results[::2], results[1::2], strict=True):
        assert [type(v) for v in mine] == [type(v) for v in ref]
        assert torch.equal(mine[0], ref[0]) and mine[1:-1] == ref[1:-1]
        mine_info, ref_info = mine[-1], ref[-1]
        if "episode" in ref_info:  # its elapsed time "t" differs between the two envs
            assert mine_info.pop("episode").keys() == ref_info.pop("episode").keys()
        assert mine_info.keys() == ref_info.keys()
        for key, value in ref_info.items():
            assert value.dtype == mine_info[key].dtype and torch.equal(value, mine_info[key])


def test_core_wrappers_reject_non_box_observations():
    with pytest.raises(ValueError, match="Box observation"):
        add_core_env_wrappers(gym.make("FrozenLake-v1"), "cpu")


def test_env_search_find_lunar_lander():
    assert EnvSearch.find("lunarlander") == [
        EnvResult("LunarLander-v3", "discrete"),
        EnvResult("LunarLanderContinuous-v3", "continuous"),
    ]


def test_env_search_by_action_type():
    discrete = [r.name for r in EnvSearch.discrete()]
    continuous = [r.name for r in EnvSearch.continuous()]
    assert "CartPole-v1" in discrete and "CartPole-v0" not in discrete
    assert {"InvertedPendulum-v5", "Pendulum-v1"} <= set(continuous)
    assert not set(discrete) & set(continuous)
    assert discrete == sorted(discrete)
    every = [r.name for r in EnvSearch.find("")]
    assert not any(n.startswith(("phys2d/", "tabular/", "GymV")) for n in every)
    assert "FrozenLake-v1" not in every and "InvertedPendulum-v4" not in every


def test_env_search_cache_builds_fast_and_quietly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    search_module._all_envs.cache_clear()
    start = time.perf_counter()
    EnvSearch.find("x")
    assert time.perf_counter() - start < 10.0
    start = time.perf_counter()
    EnvSearch.continuous()
    assert time.perf_counter() - start < 0.01  # cached
    assert list(tmp_path.iterdir()) == []  # MuJoCo's compiler warnings wrote no log file


def test_headless_configuration(monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    configure_headless_rendering()
    assert (os.environ["MUJOCO_GL"], os.environ["SDL_VIDEODRIVER"]) == ("egl", "dummy")
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # the user's choice wins
    configure_headless_rendering()
    assert os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")  # a real display needs no offscreen backend
    configure_headless_rendering()
    assert "MUJOCO_GL" not in os.environ


@pytest.mark.parametrize(
    ("env_id", "shape"), [("InvertedPendulum-v5", (480, 480, 3)), ("CartPole-v1", (400, 600, 3))]
)
def test_rgb_array_rendering_headless(env_id, shape):
    env = make_env(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame.shape == shape and frame.dtype == np.uint8
    assert frame.std() > 0  # a real picture, not a blank buffer
