"""Record videos of training episodes with Gymnasium's `RecordVideo`."""

import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import torch
from gymnasium.wrappers import RecordVideo

from velora.callbacks.checkpoints import CHECKPOINT_ROOT
from velora.training import TrainCallback, TrainState
from velora.utils.checks import check_int

METHODS = ("episode", "step")


class _Recorder(RecordVideo):
    """`RecordVideo` whose file names come from the callback's triggers (global counts)."""

    def __init__(self, env: gym.Env, folder: Path, callback: "RecordVideos") -> None:
        self.next_name = ""
        self.finish: Callable[[TrainState], None] = callback.on_train_end
        step_trigger = callback._step_due if callback.method == "step" else None
        with warnings.catch_warnings():  # RecordVideos already checked the folder
            warnings.filterwarnings("ignore", ".*Overwriting existing videos")
            super().__init__(
                env,
                str(folder),
                episode_trigger=callback._episode_due,
                step_trigger=step_trigger,
                gc_trigger=None,  # a full gc pass per video costs 0.1-0.3 s; see stop_recording
            )

    def start_recording(self, video_name: str) -> None:
        super().start_recording(self.next_name or video_name)

    def stop_recording(self) -> None:
        frames = self.recorded_frames
        super().stop_recording()
        frames.clear()  # moviepy's clip keeps them in a reference cycle: free them now


class RecordVideos(TrainCallback):
    """Records training episodes to `checkpoints/<dirname>/videos/<EnvName>-<what>.mp4`.

    With `method="episode"`, every episode whose number is a multiple of `frequency` is
    recorded (`CartPole-episode-200.mp4`); with `method="step"`, a recording starts at
    every `frequency`-th environment step and runs to the end of that episode
    (`CartPole-step-5000.mp4`; a trigger inside a running video does not cut it).
    Numbers count over the agent's life, so a resumed agent continues them.

    The final training episode is always recorded. When training ends early (early
    stopping or Ctrl-C), one extra episode is played with the final agent (stochastic
    actions, no learning, random generators restored afterwards) and saved as
    `<EnvName>-final.mp4`, so the end of training is always on video. Each video is
    written as soon as its episode ends.

    Args:
        dirname: experiment folder name inside `checkpoints/` (shared with `SaveCheckpoints`).
        method: "episode" or "step": what `frequency` counts.
        frequency: record every this many episodes or steps.
        force: record into a videos folder that already holds files (same names are
            overwritten); without it, such a folder is refused.
    """

    render_mode = "rgb_array"

    def __init__(
        self, dirname: str, *, method: str = "episode", frequency: int = 100, force: bool = False
    ) -> None:
        if not isinstance(dirname, str) or not dirname.strip() or Path(dirname).is_absolute():
            raise ValueError(f"dirname must be a non-empty relative folder name, got {dirname!r}.")
        if method not in METHODS:
            raise ValueError(f"method must be 'episode' or 'step', got {method!r}.")
        check_int("frequency", frequency)
        self.dirname, self.method, self.frequency, self.force = dirname, method, frequency, force
        self._recorder: _Recorder | None = None

    @property
    def videos_dir(self) -> Path:
        return CHECKPOINT_ROOT / self.dirname / "videos"

    def on_train_start(self, state: TrainState) -> None:
        if not self.force and self.videos_dir.is_dir() and any(self.videos_dir.iterdir()):
            raise FileExistsError(
                f"{self.videos_dir} already holds videos; pass force=True to overwrite them "
                "or choose another dirname."
            )
        self._env_name, self._start_step = state.env_name, state.start_step
        self._first, self._last = state.start_episode, state.start_episode + state.n_episodes
        self._final = self._finished = False
        self._recorder = None

    def wrap_env(self, env: gym.Env) -> gym.Env:
        modes = env.metadata.get("render_modes") or ()
        if "rgb_array" not in modes or env.render_mode != "rgb_array":
            name = env.spec.id if env.spec else type(env.unwrapped).__name__
            raise ValueError(f"RecordVideos needs an env that renders 'rgb_array'; {name} cannot.")
        self._recorder = _Recorder(env, self.videos_dir, self)
        return self._recorder

    def _due(self, name: str) -> bool:
        self._recorder.next_name = f"{self._env_name}-{name}"
        return True

    def _episode_due(self, episode_id: int) -> bool:
        number = self._first + episode_id + 1  # Gymnasium counts from 0, per wrapper
        if self._final:
            return self._due("final")
        if number == self._last or (self.method == "episode" and number % self.frequency == 0):
            return self._due(f"episode-{number}")
        return False

    def _step_due(self, step_id: int) -> bool:
        number = self._start_step + step_id + 1
        return (
            number % self.frequency == 0
            and not self._recorder.recording
            and self._due(f"step-{number}")
        )

    def on_episode_end(self, state: TrainState) -> None:
        if self._recorder is not None and self._recorder.recording:
            self._recorder.stop_recording()  # write it now, not at the next reset

    def on_train_end(self, state: TrainState) -> None:
        """Keep a partial video (Ctrl-C) and record the final agent if training ended early.

        Runs once; `CometAnalytics` may call it first, to upload every video.
        """
        recorder = self._recorder
        if recorder is None or self._finished:
            return
        self._finished = True
        if recorder.recording:
            recorder.stop_recording()
        if state.episode >= self._last:
            return
        env, agent = state.env, state.agent
        rng = env.unwrapped.np_random  # shared with the agent's env: leave it untouched
        rng_state = rng.bit_generator.state
        cuda = [agent.device] if agent.device.type == "cuda" else []
        self._final = True
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=cuda):
                obs, _ = env.reset()
                hidden = None
                for _ in range(state.max_steps):
                    action, hidden = agent.predict(obs, hidden, train_mode=True)
                    obs, _, terminated, truncated, _ = env.step(action)
                    if terminated or truncated:
                        break
        finally:
            self._final = False
            rng.bit_generator.state = rng_state
            if recorder.recording:
                recorder.stop_recording()

    def summary(self) -> str:
        return f"RecordVideos({self.videos_dir}, every {self.frequency} {self.method}s)"

    def config(self) -> dict:
        return {"dirname": self.dirname, "method": self.method, "frequency": self.frequency}
