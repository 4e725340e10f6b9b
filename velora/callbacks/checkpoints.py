"""Save the agent every few episodes, at its best evaluation and at the end of training."""

import re
import shutil
import uuid
from pathlib import Path

from velora.callbacks.evaluate import has_evaluations
from velora.training import TrainCallback, TrainState
from velora.utils.checks import check_int
from velora.utils.files import replace_dir, write_json_atomic

CHECKPOINT_ROOT = Path("checkpoints")


class SaveCheckpoints(TrainCallback):
    """Saves the agent to `checkpoints/<dirname>/saves/<EnvName>_<episode>/`.

    Every `frequency` episodes, and at the end of training (`<EnvName>_final`, also
    after Ctrl-C). `model_config.json` is written once into the `saves` folder and
    `completed.json` (final statistics) when training ends.

    With `best=True`, `<EnvName>_best/` holds the agent of the best evaluation so far
    (of an `Evaluate`, or `EarlyStopping(eval_every=...)`, in the same run): it is
    replaced whenever an evaluation beats every earlier one, in one step on Linux, so
    a crash leaves the old or the new one, whole. `completed.json` then names it. With
    `keep_last=N` only the last N periodic checkpoints are kept (`_best` and `_final`
    are not periodic).

    Args:
        dirname: experiment folder name inside `checkpoints/`.
        frequency: save every this many episodes.
        buffer: also save the replay buffer, so training can be resumed exactly.
        best: keep the agent of the best evaluation in `<EnvName>_best/`.
        keep_last: how many periodic checkpoints to keep (None: all).
    """

    def __init__(
        self,
        dirname: str,
        *,
        frequency: int = 100,
        buffer: bool = False,
        best: bool = False,
        keep_last: int | None = None,
    ) -> None:
        if not isinstance(dirname, str) or not dirname.strip() or Path(dirname).is_absolute():
            raise ValueError(f"dirname must be a non-empty relative folder name, got {dirname!r}.")
        check_int("frequency", frequency)
        if keep_last is not None:
            check_int("keep_last", keep_last)
        self.dirname = dirname
        self.frequency = frequency
        self.buffer = buffer
        self.best = best
        self.keep_last = keep_last
        self.best_saved: dict | None = None

    @property
    def saves_dir(self) -> Path:
        return CHECKPOINT_ROOT / self.dirname / "saves"

    def on_train_start(self, state: TrainState) -> None:
        if self.best and not has_evaluations(state):
            raise ValueError(
                "SaveCheckpoints(best=True) needs evaluations to rank: add an "
                "Evaluate(every=...) callback (or EarlyStopping(..., eval_every=...)) to the "
                "same train() call."
            )
        self.best_saved = None
        if self.saves_dir.is_dir() and any(self.saves_dir.iterdir()):
            raise FileExistsError(
                f"{self.saves_dir} already holds checkpoints; choose another dirname or "
                "delete the folder."
            )
        self.saves_dir.mkdir(parents=True, exist_ok=True)

    def on_episode_end(self, state: TrainState) -> None:
        latest = state.latest_evaluation
        if self.best and latest and latest["episode"] == state.episode and latest["improved"]:
            self._save_best(state, latest)
        if state.episode % self.frequency == 0:
            self._save(state, str(state.episode))
            if self.keep_last is not None:
                self._rotate(state)

    def _save_best(self, state: TrainState, evaluation: dict) -> None:
        target = self.saves_dir / f"{state.env_name}_best"
        staging = self.saves_dir / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
        try:
            state.agent.save(staging, buffer=self.buffer, config=True)
            replace_dir(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.best_saved = {
            "episode": evaluation["episode"],
            "steps": evaluation["steps"],
            "mean_return": evaluation["mean_return"],
            "std_return": evaluation["std_return"],
            "path": str(target),
        }

    def _rotate(self, state: TrainState) -> None:
        """Delete the periodic checkpoints beyond the last `keep_last`."""
        pattern = re.compile(rf"{re.escape(state.env_name)}_(\d+)")
        periodic = sorted(
            (int(match.group(1)), path)
            for path in self.saves_dir.iterdir()
            if (match := pattern.fullmatch(path.name)) and path.is_dir()
        )
        for _, path in periodic[: -self.keep_last]:
            shutil.rmtree(path)

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
                **({"best": self.best_saved} if self.best else {}),
            },
        )

    def _save(self, state: TrainState, suffix: str) -> None:
        state.agent.save(
            self.saves_dir / f"{state.env_name}_{suffix}", buffer=self.buffer, config=True
        )

    def summary(self) -> str:
        return (
            f"SaveCheckpoints({self.saves_dir}, every {self.frequency} episodes"
            f"{', with buffer' if self.buffer else ''}{', best' if self.best else ''}"
            f"{f', keeping the last {self.keep_last}' if self.keep_last else ''})"
        )

    def config(self) -> dict:
        return {
            "dirname": self.dirname,
            "frequency": self.frequency,
            "buffer": self.buffer,
            "best": self.best,
            "keep_last": self.keep_last,
        }
