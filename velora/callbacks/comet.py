"""Track training runs online with Comet (the optional `velora[comet]` extra)."""

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
from dotenv import dotenv_values
from gymnasium.wrappers import RecordVideo

from velora.callbacks.tracking import episode_metrics, flatten, new_evaluation_metrics
from velora.metrics import EpisodeRecord
from velora.training import TrainCallback, TrainState

INSTALL_HINT = 'pip install "velora[comet]"'
# Comet's client would auto-log torch losses on every backward pass, the command line,
# the model graph and this module's source (the user's script is logged instead), and
# print every parameter at the end: noise next to what this callback logs itself.
EXPERIMENT_OPTIONS = {
    "auto_metric_logging": False,
    "auto_param_logging": False,
    "parse_args": False,
    "log_graph": False,
    "log_code": False,
    "display_summary_level": 0,
}


def comet_settings(env_file: str | os.PathLike[str] = ".env") -> dict[str, str]:
    """`COMET_*` settings from the environment, falling back to an `.env` file."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {k: v for k, v in {**values, **os.environ}.items() if k.startswith("COMET_")}


def is_offline(settings: dict[str, str]) -> bool:
    """Offline when `COMET_OFFLINE_DIRECTORY` is set, or `COMET_MODE=offline`/`COMET_OFFLINE=1`."""
    return bool(
        settings.get("COMET_OFFLINE_DIRECTORY")
        or settings.get("COMET_MODE", "").lower() == "offline"
        or settings.get("COMET_OFFLINE", "").lower() in ("1", "true", "yes")
    )


class CometAnalytics(TrainCallback):
    """Logs a training run to a Comet experiment.

    Needs `pip install "velora[comet]"` and a `COMET_API_KEY`, set in the environment or
    in a `.env` file in the working directory; both are checked before training starts.
    Offline mode (`COMET_OFFLINE_DIRECTORY=<dir>`, or `COMET_MODE=offline`) needs no
    key: the experiment is written to `<dir>/<key>.zip`, to send later with
    `comet upload`.

    Logs the agent config once, then for every logged episode (Comet step = episode
    number): `episode/return`, `episode/length`, `reward/moving_avg`,
    `reward/moving_upper` (avg + std), `reward/moving_lower` (avg - std),
    `losses/{actor,critic,entropy}_loss` and `alpha` (the entropy temperature).
    Episodes played before learning starts (the warm-up) have no losses, so their loss
    metrics are skipped rather than logged as NaN.
    Evaluations (`Evaluate`) are logged at their episode as `eval/mean_return`,
    `eval/std_return` and `eval/mean_length`. When training ends, the videos recorded
    by `RecordVideos` (or any `RecordVideo` wrapper on the training env) during this
    run are uploaded.

    Args:
        project_name: the Comet project to log to.
        experiment_name: default `<AgentClass>_<EnvName>_<n_episodes>ep`.
        tags: default `[AgentClass, EnvName]`.
        experiment_key: continue this existing experiment instead of creating one.
    """

    def __init__(
        self,
        project_name: str,
        experiment_name: str | None = None,
        *,
        tags: list[str] | None = None,
        experiment_key: str | None = None,
    ) -> None:
        if not isinstance(project_name, str) or not project_name.strip():
            raise ValueError(f"project_name must be a non-empty string, got {project_name!r}.")
        self.project_name = project_name
        self.experiment_name = experiment_name
        self.tags = None if tags is None else [str(tag) for tag in tags]
        self.experiment_key = experiment_key
        self.experiment: Any = None

    def on_train_start(self, state: TrainState) -> None:
        self._started_at = time.time()
        try:
            import comet_ml
        except ImportError as err:
            raise ImportError(f"CometAnalytics needs the comet_ml package: {INSTALL_HINT}") from err
        settings = comet_settings()
        agent = type(state.agent).__name__
        options = dict(EXPERIMENT_OPTIONS, project_name=self.project_name)
        if is_offline(settings):
            options["offline_directory"] = settings.get("COMET_OFFLINE_DIRECTORY")
            new, existing = comet_ml.OfflineExperiment, comet_ml.ExistingOfflineExperiment
        elif settings.get("COMET_API_KEY"):
            options["api_key"] = settings["COMET_API_KEY"]
            new, existing = comet_ml.Experiment, comet_ml.ExistingExperiment
        else:
            raise ValueError(
                "CometAnalytics needs a Comet API key: set the COMET_API_KEY environment "
                "variable, or add a line COMET_API_KEY=<your key> to a .env file in the "
                "working directory (or set COMET_OFFLINE_DIRECTORY=<dir> to log offline)."
            )
        if self.experiment_key:
            self.experiment = existing(previous_experiment=self.experiment_key, **options)
        else:
            self.experiment = new(**options)
        if self.experiment_name or not self.experiment_key:
            name = f"{agent}_{state.env_name}_{state.n_episodes}ep"
            self.experiment.set_name(self.experiment_name or name)
        self.experiment.add_tags(self.tags if self.tags is not None else [agent, state.env_name])
        self.experiment.log_parameters(flatten(state.agent.config.model_dump(mode="json")))
        script = Path(sys.argv[0])
        if script.suffix == ".py" and script.is_file():
            self.experiment.log_code(file_name=str(script))

    def on_log(self, state: TrainState, records: tuple[EpisodeRecord, ...]) -> None:
        for record in records:
            self.experiment.log_metrics(episode_metrics(record), step=record.episode_num)

    def on_episode_end(self, state: TrainState) -> None:
        if metrics := new_evaluation_metrics(state):
            self.experiment.log_metrics(metrics, step=state.episode)

    def on_train_end(self, state: TrainState) -> None:
        if self.experiment is None:
            return
        for video in self._videos(state):  # Comet step: the episode shown, where known
            number = re.search(r"-episode-(\d+)\.mp4$", video.name)
            final = video.name.endswith("-final.mp4")
            step = int(number.group(1)) if number else state.episode if final else None
            self.experiment.log_video(str(video), name=video.name, step=step)
        self.experiment.log_other("status", state.status)
        self.experiment.end()
        self.experiment = None

    def _videos(self, state: TrainState) -> list[Path]:
        """The `.mp4` files the training env's recorders wrote during this run."""
        folders = []
        env = state.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, RecordVideo):
                if finish := getattr(env, "finish", None):
                    finish(state)  # RecordVideos: its last video, whatever the callback order
                folders.append(Path(env.video_folder))
            env = env.env
        videos = [p for f in folders for p in f.glob("*.mp4")]
        return sorted(
            (p for p in videos if p.stat().st_mtime >= self._started_at),
            key=lambda p: p.stat().st_mtime,
        )

    def summary(self) -> str:
        mode = "offline" if is_offline(comet_settings()) else "online"
        return f"CometAnalytics(project={self.project_name!r}, {mode})"

    def config(self) -> dict:
        return {
            "project_name": self.project_name,
            "experiment_name": self.experiment_name,
            "tags": self.tags,
            "experiment_key": self.experiment_key,
        }
