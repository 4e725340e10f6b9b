"""Save the agent every few episodes, at its best evaluation and at the end of training."""

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from velora.callbacks.evaluate import has_evaluations
from velora.training import TrainCallback, TrainState
from velora.utils.checks import check_int
from velora.utils.files import replace_dir, write_json_atomic

CHECKPOINT_ROOT = Path("checkpoints")
COMPLETED, MODEL_CONFIG, METADATA = "completed.json", "model_config.json", "metadata.json"
#: Settings that may differ between an agent and its own earlier checkpoints.
UNCOMPARED = {"train", "device"}


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

    A folder that already holds checkpoints is refused, unless `resume=True` and the
    agent is the one they were saved from, loaded from the newest of them: training
    then goes on in the same folder, the rotation counting the earlier checkpoints and
    `_best` replaced only by an evaluation better than the best so far.

    Args:
        dirname: experiment folder name inside `checkpoints/`.
        frequency: save every this many episodes.
        buffer: also save the replay buffer, so training can be resumed exactly.
        best: keep the agent of the best evaluation in `<EnvName>_best/`.
        keep_last: how many periodic checkpoints to keep (None: all).
        resume: go on in a folder of this agent's own earlier checkpoints.
    """

    def __init__(
        self,
        dirname: str,
        *,
        frequency: int = 100,
        buffer: bool = False,
        best: bool = False,
        keep_last: int | None = None,
        resume: bool = False,
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
        self.resume = resume
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
            if not self.resume:
                raise FileExistsError(
                    f"{self.saves_dir} already holds checkpoints; choose another dirname or "
                    "delete the folder (or, to go on training the agent loaded from its "
                    "newest checkpoint, pass resume=True)."
                )
            self._go_on(state)
        self.saves_dir.mkdir(parents=True, exist_ok=True)

    def _go_on(self, state: TrainState) -> None:
        """Check that the folder's checkpoints are this agent's past, then take up the
        best evaluation it recorded; the run is no longer complete."""
        config_path = self.saves_dir / MODEL_CONFIG
        saved = json.loads(config_path.read_text()) if config_path.is_file() else {}
        mine = state.agent.config.model_dump(mode="json")
        differ = sorted(
            key
            for key in set(saved) | set(mine)
            if key not in UNCOMPARED and saved.get(key) != mine.get(key)
        )
        if differ:
            raise ValueError(
                f"{self.saves_dir} holds the checkpoints of another agent ({MODEL_CONFIG} "
                f"differs in {', '.join(differ)}); choose another dirname."
            )
        saved_episodes = self._saved_episodes(state.env_name)
        newest = max(saved_episodes, key=saved_episodes.get, default=None)
        if newest is not None and saved_episodes[newest] > state.agent.progress.episodes:
            raise ValueError(
                f"{self.saves_dir} holds checkpoints up to episode {saved_episodes[newest]} "
                f"({newest}), past this agent's {state.agent.progress.episodes}: load "
                f"{self.saves_dir / newest} to go on from there, or choose another dirname."
            )
        completed = self.saves_dir / COMPLETED
        if completed.is_file():
            self.best_saved = json.loads(completed.read_text()).get("best")
            completed.unlink()
        if self.best_saved is None and f"{state.env_name}_best" in saved_episodes:
            self.best_saved = self._best_from_folder(state.env_name)

    def _saved_episodes(self, env_name: str) -> dict[str, int]:
        """Each checkpoint folder's name and the agent's episode count in it."""
        episodes = {}
        for path in self.saves_dir.iterdir():
            if not path.name.startswith(f"{env_name}_") or not (path / METADATA).is_file():
                continue
            progress = json.loads((path / METADATA).read_text())["progress"]
            episodes[path.name] = progress["episodes"]
        return episodes

    def _best_from_folder(self, env_name: str) -> dict[str, Any] | None:
        """What `completed.json` said of `_best`, from the evaluation saved inside it
        (a run that crashed wrote no `completed.json`)."""
        target = self.saves_dir / f"{env_name}_best"
        progress = json.loads((target / METADATA).read_text())["progress"]
        evaluation = progress.get("callback_state", {}).get("evaluation")
        if evaluation is None:
            return None
        return self._best_record(evaluation, target)

    def on_episode_end(self, state: TrainState) -> None:
        latest = state.new_evaluation
        if self.best and latest and latest["improved"]:
            self._save_best(state, latest)
        if state.episode % self.frequency == 0:
            self._save(state, str(state.episode))
            if self.keep_last is not None:
                self._rotate(state)

    def _save_best(self, state: TrainState, evaluation: dict) -> None:
        target = self._save(state, "best")
        self.best_saved = self._best_record(evaluation, target)

    @staticmethod
    def _best_record(evaluation: dict, target: Path) -> dict[str, Any]:
        return {
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
            self.saves_dir / COMPLETED,
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

    def _save(self, state: TrainState, suffix: str) -> Path:
        """Save to `<EnvName>_<suffix>`; an earlier save there (`_best`, or `_final` when
        resuming) is replaced in one step, so a crash leaves one or the other, whole."""
        target = self.saves_dir / f"{state.env_name}_{suffix}"
        if not target.exists():
            state.agent.save(target, buffer=self.buffer, config=True)
            return target
        staging = self.saves_dir / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
        try:
            state.agent.save(staging, buffer=self.buffer, config=True)
            replace_dir(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def summary(self) -> str:
        return (
            f"SaveCheckpoints({self.saves_dir}, every {self.frequency} episodes"
            f"{', with buffer' if self.buffer else ''}{', best' if self.best else ''}"
            f"{f', keeping the last {self.keep_last}' if self.keep_last else ''}"
            f"{', resuming' if self.resume else ''})"
        )

    def config(self) -> dict:
        return {
            "dirname": self.dirname,
            "frequency": self.frequency,
            "buffer": self.buffer,
            "best": self.best,
            "keep_last": self.keep_last,
            "resume": self.resume,
        }
