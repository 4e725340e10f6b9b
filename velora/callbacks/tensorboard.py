"""Log training to TensorBoard, under the same metric names as Comet."""

import os
from pathlib import Path

from velora.callbacks.tracking import episode_metrics, new_evaluation_metrics
from velora.metrics import EpisodeRecord
from velora.training import TrainCallback, TrainState


class TensorBoardLogger(TrainCallback):
    """Writes every logged episode (and every evaluation) as TensorBoard scalars.

    One run folder per training run, `<log_dir>/<AgentClass>_<EnvName>_<run id>`, the run
    id being the run's row in the metrics database; the step is the episode number.
    Needs the `tensorboard` extra (`pip install "velora[tensorboard]"`).

    Args:
        log_dir: the folder TensorBoard is pointed at (`tensorboard --logdir runs`).
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "runs") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as error:
            raise ImportError(
                'TensorBoardLogger needs TensorBoard: pip install "velora[tensorboard]" '
                f"(or pip install tensorboard). ({error})"
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = None

    def run_dir(self, state: TrainState) -> Path:
        agent = type(state.agent).__name__
        return self.log_dir / f"{agent}_{state.env_name}_{state.experiment_id}"

    def _writer(self, state: TrainState):
        if self.writer is None:  # the run id is known once the loop has recorded the run
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir(state)))
        return self.writer

    def on_log(self, state: TrainState, records: tuple[EpisodeRecord, ...]) -> None:
        writer = self._writer(state)
        for record in records:
            for name, value in episode_metrics(record).items():
                writer.add_scalar(name, value, global_step=record.episode_num)
        writer.flush()

    def on_episode_end(self, state: TrainState) -> None:
        for name, value in new_evaluation_metrics(state).items():
            self._writer(state).add_scalar(name, value, global_step=state.episode)

    def on_train_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def summary(self) -> str:
        return f"TensorBoardLogger({self.log_dir})"

    def config(self) -> dict:
        return {"log_dir": str(self.log_dir)}
