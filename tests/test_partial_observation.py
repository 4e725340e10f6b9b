"""Partially observed tasks: hidden components, noise and dropped observations, reached
by an env id that agents, saves and a fresh process all understand."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from velora.gym import make_env, partially_observed
from velora.models import NeuroFlow


def play(env: gym.Env, seed: int, steps: int) -> list[np.ndarray]:
    """Observations of `steps` fixed actions (0, 1, 0, 1, ...) from `reset(seed)`."""
    obs, _ = env.reset(seed=seed)
    seen = [np.asarray(obs, dtype=np.float64)]
    for t in range(steps):
        action = t % 2 if isinstance(env.action_space, gym.spaces.Discrete) else [0.1]
        obs, _, terminated, truncated, _ = env.step(action)
        seen.append(np.asarray(obs, dtype=np.float64))
        if terminated or truncated:
            break
    return seen


def test_hidden_velocities_leave_the_other_components_as_they_were():
    env_id = partially_observed("CartPole-v1", hide="velocities")
    assert env_id == "PO/CartPole-hide-1-3-v1"
    partial, full = play(make_env(env_id), 3, 30), play(gym.make("CartPole-v1"), 3, 30)
    assert len(partial) == len(full)
    np.testing.assert_array_equal(np.stack(partial), np.stack(full)[:, [0, 2]])

    mujoco = partially_observed("InvertedPendulum-v5", hide="velocities")
    assert make_env(mujoco).observation_space.shape == (2,)


def test_noise_has_its_std_and_repeats_with_the_seed():
    env_id = partially_observed("Pendulum-v1", noise_std=0.5)
    noisy = np.stack(play(make_env(env_id), 1, 199))
    clean = np.stack(play(gym.make("Pendulum-v1"), 1, 199))
    difference = noisy - clean  # the env's own randomness is untouched by the noise
    assert difference.std() == pytest.approx(0.5, rel=0.1)
    assert abs(difference.mean()) < 0.1
    np.testing.assert_array_equal(noisy, np.stack(play(make_env(env_id), 1, 199)))


def test_dropped_observations_are_zeros_at_the_rate_and_never_the_first():
    env_id = partially_observed("Pendulum-v1", drop_rate=0.3)
    assert env_id == "PO/Pendulum-drop-0.3-v1"
    env = make_env(env_id)
    dropped, total = 0, 0
    for seed in range(5):
        seen = play(env, seed, 199)
        assert np.any(seen[0] != 0)
        dropped += sum(bool(np.all(obs == 0)) for obs in seen[1:])
        total += len(seen) - 1
    assert dropped / total == pytest.approx(0.3, abs=0.05)


def test_an_agent_trains_saves_and_loads_in_a_fresh_process(tmp_path):
    env_id = partially_observed("CartPole-v1", hide=[1, 3], noise_std=0.05)
    agent = NeuroFlow(env_id, 8, 16, buffer_size=2000, seed=0)
    agent.train(16, n_episodes=3, db_path=str(tmp_path / "m.db"), display_count=100)
    agent.save(tmp_path / "agent")
    obs = np.array([0.01, -0.02], dtype=np.float32)
    expected = agent.predict(obs)[0].item()
    code = (
        "import numpy as np; from velora.models import NeuroFlow; "
        f"a = NeuroFlow.load({str(tmp_path / 'agent')!r}); "
        "print(a.env_id, a.predict(np.array([0.01, -0.02], dtype=np.float32))[0].item())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == [env_id, str(expected)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hide": [4]}, r"cannot hide component\(s\) \[4\] of CartPole-v1: .* 4 components, 0..3"),
        ({"hide": [0, 1, 2, 3]}, "leaves nothing to observe"),
        ({"hide": "speed"}, "'velocities'"),
        ({"noise_std": -0.1}, "noise_std must be >= 0"),
        ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
        ({}, "needs hide, noise_std or drop_rate"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        partially_observed("CartPole-v1", **kwargs)


def test_unknown_ids_and_tasks_without_known_velocities():
    with pytest.raises(ValueError, match="CartPole-v1"):
        partially_observed("CartPol-v1", hide=[0])
    with pytest.raises(ValueError, match="no velocity components are known for Bipedal"):
        partially_observed("BipedalWalker-v3", hide="velocities")
    with pytest.raises(ValueError, match="not a 1-D Box"):
        partially_observed("Taxi-v4", hide=[0])
    with pytest.raises(ValueError, match="not a canonical"):
        make_env("PO/CartPole-noise-0.10-v1")
