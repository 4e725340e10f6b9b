"""The writer the training loop uses: buffer episodes in memory, write them in batches."""

import json
import os
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Self

from sqlalchemy import func, insert
from sqlmodel import Session, select

from velora.metrics.db import METRICS_DB, get_db_engine
from velora.metrics.tables import Episode, Evaluation, Experiment, utc_now


def _coerce_fields(record: Any) -> None:
    """Each field of a frozen record cast to its declared type (`int`/`float`)."""
    for field in fields(record):
        object.__setattr__(record, field.name, field.type(getattr(record, field.name)))


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One finished episode's numbers, as plain Python values.

    Values are coerced on creation (`int`/`float`): a 0-d tensor or NumPy scalar
    becomes a plain number SQLite can store, and a value that cannot fails here,
    at the episode that produced it, rather than later inside a flush.
    """

    episode_num: int
    reward: float
    length: int
    reward_moving_avg: float
    reward_moving_std: float
    actor_loss: float
    critic_loss: float
    entropy_loss: float
    alpha: float = float("nan")  # the entropy temperature when the episode ended

    __post_init__ = _coerce_fields


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    """One evaluation's numbers, coerced like `EpisodeRecord`'s."""

    episode_num: int
    steps: int
    mean_return: float
    std_return: float
    mean_length: float

    __post_init__ = _coerce_fields


def write_evaluation(
    path: str | os.PathLike[str], experiment_id: int, record: EvaluationRecord
) -> None:
    """Append one evaluation of `experiment_id` to the `evaluation` table at once."""
    row = {field.name: getattr(record, field.name) for field in fields(record)}
    with get_db_engine(path).begin() as connection:
        connection.execute(
            insert(Evaluation), [{**row, "experiment_id": experiment_id, "created_at": utc_now()}]
        )


class MetricsWriter:
    """Appends one experiment's episodes to `metrics.db`, one transaction per flush.

    `add` only buffers, so the training loop never waits on disk per episode;
    `flush` writes the whole buffer at once, or nothing if it fails.
    """

    def __init__(self, path: str | os.PathLike[str] = METRICS_DB) -> None:
        self._engine = get_db_engine(path)
        self._experiment_id: int | None = None
        self._buffer: list[dict[str, Any]] = []

    @property
    def experiment_id(self) -> int | None:
        """The experiment episodes are written to; `None` before `start`/`resume`."""
        return self._experiment_id

    def start(self, agent: str, env: str, config_json: str) -> int:
        """Create a new experiment row and write subsequent episodes to it."""
        json.loads(config_json)  # Reject broken JSON now rather than store it.
        self.flush()
        with Session(self._engine) as session:
            experiment = Experiment(agent=agent, env=env, config=config_json)
            session.add(experiment)
            session.commit()
            session.refresh(experiment)
            assert experiment.id is not None
            self._experiment_id = experiment.id
        return self._experiment_id

    def resume(self, experiment_id: int) -> None:
        """Continue an existing experiment, e.g. after loading a checkpoint."""
        with Session(self._engine) as session:
            if session.get(Experiment, experiment_id) is None:
                raise ValueError(f"no experiment with id {experiment_id} in {self._engine.url}")
        self.flush()
        self._experiment_id = experiment_id

    def add(self, record: EpisodeRecord) -> None:
        """Buffer one episode in memory; nothing touches the database until `flush`."""
        if self._experiment_id is None:
            raise RuntimeError("call start() or resume() before add()")
        # Shallow: the fields are plain numbers, which `asdict` would deep-copy one by one.
        row = {field.name: getattr(record, field.name) for field in fields(record)}
        row["experiment_id"] = self._experiment_id
        row["created_at"] = utc_now()  # When the episode ended, not when it was flushed.
        self._buffer.append(row)

    def flush(self) -> None:
        """Write every buffered episode in one transaction, then clear the buffer.

        On failure the transaction rolls back (no half batch in the database), the
        buffer is kept so a later flush can retry, and the error propagates.
        """
        if not self._buffer:
            return
        with self._engine.begin() as connection:
            connection.execute(insert(Episode), self._buffer)
        self._buffer.clear()

    def last_episode(self, experiment_id: int | None = None) -> int:
        """Highest stored `episode_num` of an experiment (default: the current one), 0 if none.

        Only flushed episodes count; used to number episodes on after a resume.
        """
        experiment_id = self._experiment_id if experiment_id is None else experiment_id
        if experiment_id is None:
            raise ValueError("no experiment given and none started or resumed")
        query = select(func.max(Episode.episode_num)).where(Episode.experiment_id == experiment_id)
        with Session(self._engine) as session:
            return session.exec(query).one() or 0

    def close(self) -> None:
        """Flush what is left; the engine is shared and cached, so it stays open."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
