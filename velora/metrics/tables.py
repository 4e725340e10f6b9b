"""The SQLModel tables behind `metrics.db`: one row per experiment, one per episode."""

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Float, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utc_now() -> datetime:
    """Now, timezone-aware, so every stored timestamp means the same instant."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores datetimes as naive UTC and reads them back aware.

    SQLite has no timezone type and silently drops `tzinfo`; this keeps the
    contract "timestamps are timezone-aware". Naive inputs are taken as UTC.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class MetricFloat(TypeDecorator[float]):
    """A float column that round-trips NaN.

    SQLite turns a bound NaN into NULL, so a NaN loss (no update yet) or moving
    std (one episode) would break a NOT NULL column and sink the whole batch.
    NaN is stored as NULL and read back as NaN; SQL filters skip it as they should.
    """

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        value = float(value)
        return None if math.isnan(value) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> float:
        return math.nan if value is None else float(value)


def _metric() -> Any:
    return Field(sa_type=MetricFloat, nullable=True)


def _timestamp() -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class Experiment(SQLModel, table=True):
    """One `train()` run: which agent on which env, with its full config as JSON."""

    __tablename__ = "experiment"

    id: int | None = Field(default=None, primary_key=True)
    agent: str
    env: str
    config: str = Field(sa_type=Text)
    created_at: datetime = _timestamp()


class Episode(SQLModel, table=True):
    """One finished training episode and the running statistics at that point."""

    __tablename__ = "episode"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    episode_num: int
    reward: float = _metric()
    length: int
    reward_moving_avg: float = _metric()
    reward_moving_std: float = _metric()
    actor_loss: float = _metric()
    critic_loss: float = _metric()
    entropy_loss: float = _metric()
    #: the entropy temperature when the episode ended (added after the first release;
    #: older databases gain the column, their rows reading NaN).
    alpha: float = _metric()
    created_at: datetime = _timestamp()


class Evaluation(SQLModel, table=True):
    """One evaluation of the deterministic policy during training (`Evaluate`)."""

    __tablename__ = "evaluation"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    episode_num: int
    steps: int
    mean_return: float = _metric()
    std_return: float = _metric()
    mean_length: float = _metric()
    created_at: datetime = _timestamp()
