"""RecordVideos: real CartPole / MuJoCo rendering, real mp4 files decoded back."""

import sqlite3
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
from callback_helpers import CtrlCIntoEpisode
from gymnasium import spaces

from velora.callbacks import EarlyStopping, RecordVideos
from velora.models import NeuroFlow

VIDEOS = Path("checkpoints/nf/videos")


def tiny_agent(env_id: str = "CartPole-v1") -> NeuroFlow:
    return NeuroFlow(env_id, 8, 16, buffer_size=5000, seed=0)


def episode_lengths() -> dict[int, int]:
    with sqlite3.connect("metrics.db") as db:
        return dict(db.execute("SELECT episode_num, length FROM episode"))


def frames(path: Path):
    return iio.imread(path)  # (n_frames, height, width, 3)


def assert_frames(path: Path, n_expected: int, height: int, width: int) -> None:
    video = frames(path)
    # moviepy 2.2 sometimes drops the last frame (float rounding of the clip duration).
    assert n_expected - 1 <= video.shape[0] <= n_expected, (path.name, video.shape, n_expected)
    assert video.shape[1:] == (height, width, 3)
    assert video.max() > video.min()  # a picture, not a blank frame


def test_episode_method_records_every_nth_and_the_last_episode():
    agent = tiny_agent()
    agent.train(16, n_episodes=5, callbacks=[RecordVideos("nf", frequency=2)], log_freq=2)
    names = sorted(p.name for p in VIDEOS.iterdir())
    assert names == ["CartPole-episode-2.mp4", "CartPole-episode-4.mp4", "CartPole-episode-5.mp4"]
    lengths = episode_lengths()
    for episode in (2, 4, 5):  # the reset frame, then one frame per step
        assert_frames(VIDEOS / f"CartPole-episode-{episode}.mp4", lengths[episode] + 1, 400, 600)


def test_step_method_names_videos_by_global_step():
    agent = tiny_agent()
    callback = RecordVideos("nf", method="step", frequency=15)
    agent.train(16, n_episodes=4, callbacks=[callback], log_freq=2)
    lengths = episode_lengths()
    # Replay the rule: a video starts at every 15th step unless one is running, and runs
    # to the end of its episode; the last episode is recorded from its reset.
    expected, end = {}, 0
    for episode, length in sorted(lengths.items()):
        start, end = end, end + length
        if episode == 4:
            expected["CartPole-episode-4.mp4"] = length + 1
            continue
        first = next((s for s in range(start + 1, end + 1) if s % 15 == 0), None)
        if first is not None:
            expected[f"CartPole-step-{first}.mp4"] = end - first + 1
    assert any(name.startswith("CartPole-step-") for name in expected)
    assert sorted(p.name for p in VIDEOS.iterdir()) == sorted(expected)
    for name, n_frames in expected.items():
        assert_frames(VIDEOS / name, n_frames, 400, 600)


def test_mujoco_env_records_headless():
    agent = tiny_agent("InvertedPendulum-v5")
    agent.train(16, n_episodes=2, callbacks=[RecordVideos("nf", frequency=1)], max_steps=40)
    lengths = episode_lengths()
    for episode in (1, 2):
        path = VIDEOS / f"InvertedPendulum-episode-{episode}.mp4"
        assert_frames(path, lengths[episode] + 1, 480, 480)


def test_early_stop_records_the_final_agent_without_touching_random_state():
    def run(callbacks):
        agent = tiny_agent()
        summary = agent.train(16, n_episodes=5, callbacks=callbacks)
        return agent, summary

    plain, plain_summary = run([EarlyStopping(0.0, patience=2)])
    plain_rng = plain.env.unwrapped.np_random.bit_generator.state
    plain_torch = torch.get_rng_state()

    agent, summary = run([EarlyStopping(0.0, patience=2), RecordVideos("nf", frequency=100)])
    assert summary.early_stopped and summary.episodes == 2 == plain_summary.episodes
    assert sorted(p.name for p in VIDEOS.iterdir()) == ["CartPole-final.mp4"]
    assert frames(VIDEOS / "CartPole-final.mp4").shape[1:] == (400, 600, 3)
    assert agent.steps_done == plain.steps_done  # the extra episode is not training
    assert agent.env.unwrapped.np_random.bit_generator.state == plain_rng
    assert torch.equal(torch.get_rng_state(), plain_torch)


def test_ctrl_c_keeps_the_partial_video_and_records_the_final_agent():
    agent = tiny_agent()
    callbacks = [RecordVideos("nf", frequency=1), CtrlCIntoEpisode(2, steps=5)]
    with pytest.raises(KeyboardInterrupt):
        agent.train(16, n_episodes=5, callbacks=callbacks)
    assert agent.episodes_done == 1  # interrupted inside episode 2
    names = sorted(p.name for p in VIDEOS.iterdir())
    assert names == ["CartPole-episode-1.mp4", "CartPole-episode-2.mp4", "CartPole-final.mp4"]
    assert_frames(VIDEOS / "CartPole-episode-1.mp4", episode_lengths()[1] + 1, 400, 600)
    assert_frames(VIDEOS / "CartPole-episode-2.mp4", 5 + 1, 400, 600)


def test_resumed_training_numbers_videos_on():
    agent = tiny_agent()
    agent.train(16, n_episodes=2, callbacks=[RecordVideos("nf", frequency=2)])
    agent.train(16, n_episodes=3, callbacks=[RecordVideos("nf", frequency=2, force=True)])
    names = sorted(p.name for p in VIDEOS.iterdir())
    assert names == ["CartPole-episode-2.mp4", "CartPole-episode-4.mp4", "CartPole-episode-5.mp4"]


def test_existing_videos_folder_needs_force():
    VIDEOS.mkdir(parents=True)
    (VIDEOS / "old.mp4").write_bytes(b"old")
    agent = tiny_agent()
    with pytest.raises(FileExistsError, match="force=True"):
        agent.train(16, n_episodes=1, callbacks=[RecordVideos("nf")])
    assert agent.steps_done == 0

    agent.train(16, n_episodes=1, callbacks=[RecordVideos("nf", force=True)])
    assert sorted(p.name for p in VIDEOS.iterdir()) == ["CartPole-episode-1.mp4", "old.mp4"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "frames"}, "'episode' or 'step'"),
        ({"frequency": 0}, "frequency"),
        ({"frequency": 2.5}, "frequency"),
        ({"dirname": ""}, "dirname"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecordVideos(**{"dirname": "nf", **kwargs})


def test_env_without_rgb_array_rendering_is_refused_before_training(register_env):
    env_id = register_env(spaces.Discrete(2))  # conftest's TinyEnv: render_modes == []
    agent = tiny_agent(env_id)
    with pytest.raises(ValueError, match=f"rgb_array.*{env_id}|{env_id}.*rgb_array"):
        agent.train(16, n_episodes=2, callbacks=[RecordVideos("nf")])
    assert agent.steps_done == 0
    assert not VIDEOS.exists()


def test_summary_and_config():
    callback = RecordVideos("nf", method="step", frequency=500)
    assert callback.config() == {"dirname": "nf", "method": "step", "frequency": 500}
    assert "500" in callback.summary() and "step" in callback.summary()
