"""Save the agent every few episodes and at the end of training."""

from pathlib import Path

from velora.training import TrainCallback, TrainState
from velora.utils.checks import check_int
from velora.utils.files import write_json_atomic

CHECKPOINT_ROOT = Path("checkpoints")


class SaveCheckpoints(TrainCallback):
    """Saves the agent to `checkpoints/<dirname>/saves/<EnvName>_<episode>/`.

    Every `frequency` episodes, and at the end of training (`<EnvName>_final`, also
    after Ctrl-C). `model_config.json` is written once into the `saves` folder and
    `completed.json` (final statistics) when training ends.

    Args:
        dirname: experiment folder name inside `checkpoints/`.
        frequency: save every this many episodes.
        buffer: also save the replay buffer, so training can be resumed exactly.
    """

    def __init__(self, dirname: str, *, frequency: int = 100, buffer: bool = False) -> None:
        if not isinstance(dirname, str) or not dirname.strip() or Path(dirname).is_absolute():
            raise ValueError(f"dirname must be a non-empty relative folder name, got {dirname!r}.")
        check_int("frequency", frequency)
        self.dirname = dirname
        self.frequency = frequency
        self.buffer = buffer

    @property
    def saves_dir(self) -> Path:
        return CHECKPOINT_ROOT / self.dirname / "saves"

    def on_train_start(self, state: TrainState) -> None:
        if self.saves_dir.is_dir() and any(self.saves_dir.iterdir()):
            raise FileExistsError(
                f"{self.saves_dir} already holds checkpoints; choose another dirname or "
                "delete the folder."
            )
        self.saves_dir.mkdir(parents=True, exist_ok=True)

    def on_episode_end(self, state: TrainState) -> None:
        if state.episode % self.frequency == 0:
            self._save(state, str(state.episode))

    def on_train_end(self, state: TrainState) -> None:
        self._save(state, "final")
        write_json_atomic(
            self.saves_dir / "completed.json",
            {
                "episodes": state.episode,
                "episodes_this_run": state.episode - state.start_episode,
                "steps": state.step,
                "time_taken": round(state.elapsed, 3),
                "status": state.status,
                "early_stopped": state.status == "early_stopped",
                "interrupted": state.status == "interrupted",
                "reward_avg": state.reward_moving_avg,
                "reward_max": state.reward_max,
                "losses": state.losses,
            },
        )

    def _save(self, state: TrainState, suffix: str) -> None:
        state.agent.save(
            self.saves_dir / f"{state.env_name}_{suffix}", buffer=self.buffer, config=True
        )

    def summary(self) -> str:
        return (
            f"SaveCheckpoints({self.saves_dir}, every {self.frequency} episodes"
            f"{', with buffer' if self.buffer else ''})"
        )

    def config(self) -> dict:
        return {"dirname": self.dirname, "frequency": self.frequency, "buffer": self.buffer}
