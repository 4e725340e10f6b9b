"""velora.metrics against a real SQLite file: batching, atomicity, WAL, timestamps."""

import json
import math
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from velora.metrics import Episode, EpisodeRecord, Experiment, MetricsWriter, get_db_engine

CONFIG = json.dumps({"agent": "NeuroFlow", "actor_neurons": 20, "critic_neurons": 128})


def make_record(num: int) -> EpisodeRecord:
    return EpisodeRecord(
        episode_num=num,
        reward=10.0 * num,
        length=100 + num,
        reward_moving_avg=5.0 * num,
        reward_moving_std=0.5 * num,
        actor_loss=-1.0 * num,
        critic_loss=2.0 * num,
        entropy_loss=0.1 * num,
        alpha=0.5 / num,
    )


def count_episodes(db: Path) -> int:
    """Counted through a separate plain sqlite3 connection, outside the writer's engine."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM episode").fetchone()[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "metrics.db"


def test_flush_writes_rows_matching_records(db: Path) -> None:
    writer = MetricsWriter(db)
    exp_id = writer.start("NeuroFlow", "InvertedPendulum-v5", CONFIG)
    records = [make_record(n) for n in range(1, 6)]
    for record in records:
        writer.add(record)
    writer.flush()

    with Session(get_db_engine(db)) as session:
        rows = session.exec(select(Episode).order_by(Episode.episode_num)).all()
        experiment = session.get(Experiment, exp_id)
    assert experiment is not None
    assert (experiment.agent, experiment.env, experiment.config) == (
        "NeuroFlow",
        "InvertedPendulum-v5",
        CONFIG,
    )
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert row.experiment_id == exp_id
        assert row.model_dump(include=set(record.__dataclass_fields__)) == {
            name: getattr(record, name) for name in record.__dataclass_fields__
        }


def test_nothing_written_before_flush_and_empty_flush_is_noop(db: Path) -> None:
    writer = MetricsWriter(db)
    writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    writer.flush()  # empty: no-op
    for n in range(1, 4):
        writer.add(make_record(n))
    assert count_episodes(db) == 0
    writer.flush()
    assert count_episodes(db) == 3
    writer.flush()  # buffer cleared: nothing written twice
    assert count_episodes(db) == 3


def test_wal_mode_and_tables_created(db: Path) -> None:
    engine = get_db_engine(db)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    with sqlite3.connect(db) as conn:  # WAL is a property of the file itself
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"experiment", "episode"} <= tables


def test_engine_is_cached_per_path(db: Path, tmp_path: Path) -> None:
    assert get_db_engine(db) is get_db_engine(str(db))
    assert get_db_engine(db) is get_db_engine(tmp_path / "." / "metrics.db")
    assert get_db_engine(db) is not get_db_engine(tmp_path / "other.db")


def test_timestamps_are_timezone_aware(db: Path) -> None:
    before = datetime.now(UTC)
    writer = MetricsWriter(db)
    exp_id = writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    writer.add(make_record(1))
    writer.close()

    with Session(get_db_engine(db)) as session:
        experiment = session.get(Experiment, exp_id)
        episode = session.exec(select(Episode)).one()
    assert experiment is not None
    for stamp in (experiment.created_at, episode.created_at):
        assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)


def test_non_utc_timestamp_is_stored_as_the_same_instant(db: Path) -> None:
    plus_two = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with Session(get_db_engine(db)) as session:
        session.add(Experiment(agent="a", env="e", config="{}", created_at=plus_two))
        session.commit()
    with Session(get_db_engine(db)) as session:
        stored = session.exec(select(Experiment)).one().created_at
    assert stored == plus_two and stored.tzinfo == UTC


def test_nan_metrics_round_trip(db: Path) -> None:
    """Before the first update losses are NaN; SQLite would store NULL and break NOT NULL."""
    writer = MetricsWriter(db)
    writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    nan = math.nan
    writer.add(EpisodeRecord(1, 9.0, 9, 9.0, nan, nan, nan, nan))
    writer.flush()
    with Session(get_db_engine(db)) as session:
        row = session.exec(select(Episode)).one()
    assert row.reward == 9.0 and math.isnan(row.reward_moving_std) and math.isnan(row.actor_loss)


def test_resume_appends_to_same_experiment(db: Path) -> None:
    first = MetricsWriter(db)
    exp_id = first.start("NeuroFlow", "CartPole-v1", CONFIG)
    for n in range(1, 4):
        first.add(make_record(n))
    first.close()

    second = MetricsWriter(db)
    assert second.last_episode(exp_id) == 3
    second.resume(exp_id)
    assert second.experiment_id == exp_id
    start = second.last_episode() + 1
    for n in range(start, start + 2):
        second.add(make_record(n))
    second.close()

    with Session(get_db_engine(db)) as session:
        assert session.exec(select(func.count()).select_from(Experiment)).one() == 1
        nums = session.exec(select(Episode.episode_num).where(Episode.experiment_id == exp_id))
        assert sorted(nums.all()) == [1, 2, 3, 4, 5]
    assert second.last_episode() == 5


def test_last_episode_is_zero_for_empty_experiment(db: Path) -> None:
    writer = MetricsWriter(db)
    exp_id = writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    assert writer.last_episode(exp_id) == 0


def test_resume_unknown_experiment_raises(db: Path) -> None:
    with pytest.raises(ValueError, match="no experiment with id 42"):
        MetricsWriter(db).resume(42)


def test_add_before_start_raises(db: Path) -> None:
    with pytest.raises(RuntimeError, match="start"):
        MetricsWriter(db).add(make_record(1))


def test_start_rejects_invalid_json(db: Path) -> None:
    with pytest.raises(ValueError):
        MetricsWriter(db).start("NeuroFlow", "CartPole-v1", "{not json")


def test_failing_flush_leaves_no_partial_batch(db: Path) -> None:
    writer = MetricsWriter(db)
    writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    writer.add(make_record(1))
    writer.flush()

    bad = make_record(4)
    object.__setattr__(bad, "episode_num", None)  # a corrupt record: NOT NULL violation
    for record in (make_record(2), make_record(3), bad, make_record(5)):
        writer.add(record)
    with pytest.raises(IntegrityError, match="NOT NULL"):
        writer.flush()
    assert count_episodes(db) == 1  # records 2 and 3 were rolled back with the rest


def test_error_after_insert_rolls_back_and_keeps_buffer_for_retry(db: Path) -> None:
    """An error after the rows went in, still inside the transaction, undoes them all."""
    writer = MetricsWriter(db)
    writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    for n in range(1, 4):
        writer.add(make_record(n))
    engine = get_db_engine(db)

    def boom(*_args: object) -> None:
        raise RuntimeError("disk on fire")

    event.listen(engine, "after_execute", boom)
    try:
        with pytest.raises(RuntimeError, match="disk on fire"):
            writer.flush()
    finally:
        event.remove(engine, "after_execute", boom)
    assert count_episodes(db) == 0
    writer.flush()  # the buffer survived the failure, so a retry writes everything once
    assert count_episodes(db) == 3


def test_deleted_file_is_recreated(db: Path) -> None:
    MetricsWriter(db).start("NeuroFlow", "CartPole-v1", CONFIG)
    # e.g. a user deletes metrics.db between two runs in one notebook session
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    writer = MetricsWriter(db)
    assert writer.start("NeuroFlow", "CartPole-v1", CONFIG) == 1
    assert db.exists()


def test_record_coerces_numbers_and_rejects_junk() -> None:
    record = EpisodeRecord(1.0, 2, 3.0, 4, 5, 6, 7, 8)  # type: ignore[arg-type]
    assert type(record.episode_num) is int and type(record.length) is int
    assert type(record.reward) is float and type(record.entropy_loss) is float
    with pytest.raises((TypeError, ValueError)):
        EpisodeRecord(1, "high", 3, 4, 5, 6, 7, 8)  # type: ignore[arg-type]


def test_text_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(ValueError, match="notes.db.*not a usable Velora metrics database"):
        get_db_engine(path)


def test_conflicting_sqlite_db_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE episode (id INTEGER PRIMARY KEY, title TEXT)")
    with pytest.raises(ValueError, match="other.db.*'episode' lacks columns"):
        get_db_engine(path)


def test_spec_query_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default path is metrics.db in the working directory
    writer = MetricsWriter()
    exp_id = writer.start("NeuroFlow", "InvertedPendulum-v5", CONFIG)
    writer.add(make_record(1))
    writer.close()
    assert exp_id == 1 and (tmp_path / "metrics.db").exists()

    with Session(get_db_engine()) as session:
        rows = session.exec(select(Episode).where(Episode.experiment_id == 1)).all()
    assert [row.reward for row in rows] == [10.0]


def test_import_alone_in_fresh_interpreter() -> None:
    code = "import sys, velora.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


RECORD_A_RUN = """
import sys, time
from velora.metrics import MetricsWriter
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # every process opens at the same moment
writer = MetricsWriter(sys.argv[1])
print(writer.start("NeuroFlow", "CartPole-v1", "{}"))
"""


def test_runs_started_at_the_same_moment_are_all_recorded(tmp_path: Path) -> None:
    """Two trainings opening one new database together: both create-if-missing the
    schema, neither fails, both runs get their row (per database: 2 processes, 4 files)."""
    import time

    paths = [tmp_path / f"race{i}.db" for i in range(4)]
    start = str(time.time() + 3.0)  # after every interpreter has imported
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD_A_RUN, str(path), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in paths
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-2000:]
    for path in paths:
        with sqlite3.connect(path) as connection:
            ids = [row[0] for row in connection.execute("SELECT id FROM experiment ORDER BY id")]
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        assert ids == [1, 2] and mode == "wal"


def test_an_older_database_gains_missing_tables_without_losing_rows(tmp_path: Path) -> None:
    """Opening creates only what is missing: rows already there stay."""
    path = tmp_path / "old.db"
    writer = MetricsWriter(path)
    experiment = writer.start("NeuroFlow", "CartPole-v1", "{}")
    writer.add(EpisodeRecord(1, 1.0, 1, 1.0, 0.0, math.nan, math.nan, math.nan))
    writer.flush()
    get_db_engine(path).dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("DROP INDEX ix_episode_experiment_id")
    from velora.metrics import db as metrics_db

    metrics_db._engines.clear()
    get_db_engine(path)
    with sqlite3.connect(path) as connection:
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(episode)")}
        rows = connection.execute("SELECT experiment_id, reward FROM episode").fetchall()
    assert "ix_episode_experiment_id" in indexes and rows == [(experiment, 1.0)]


OLD_EPISODE_TABLE = """
CREATE TABLE episode (
    id INTEGER NOT NULL PRIMARY KEY, experiment_id INTEGER NOT NULL, episode_num INTEGER NOT NULL,
    reward FLOAT, length INTEGER NOT NULL, reward_moving_avg FLOAT, reward_moving_std FLOAT,
    actor_loss FLOAT, critic_loss FLOAT, entropy_loss FLOAT, created_at DATETIME NOT NULL,
    FOREIGN KEY(experiment_id) REFERENCES experiment (id)
)"""


def test_a_database_from_before_alpha_gains_the_column_and_keeps_its_rows(db: Path) -> None:
    writer = MetricsWriter(db)
    exp_id = writer.start("NeuroFlow", "CartPole-v1", CONFIG)
    for n in (1, 2):
        writer.add(make_record(n))
    writer.flush()
    get_db_engine(db).dispose()
    with sqlite3.connect(db) as connection:  # rebuild the episode table as it used to be
        columns = "id, experiment_id, episode_num, reward, length, reward_moving_avg, "
        columns += "reward_moving_std, actor_loss, critic_loss, entropy_loss, created_at"
        connection.execute("ALTER TABLE episode RENAME TO episode_new")
        connection.execute(OLD_EPISODE_TABLE)
        connection.execute(f"INSERT INTO episode SELECT {columns} FROM episode_new")
        connection.execute("DROP TABLE episode_new")
    from velora.metrics import db as metrics_db

    metrics_db._engines.clear()

    writer = MetricsWriter(db)
    writer.resume(exp_id)
    writer.add(make_record(3))
    writer.flush()
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT episode_num, reward, alpha FROM episode").fetchall()
    assert rows == [(1, 10.0, None), (2, 20.0, None), (3, 30.0, 0.5 / 3)]
