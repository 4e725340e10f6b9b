"""Opening `metrics.db`: one cached, WAL-mode SQLite engine per file."""

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from velora.metrics.tables import Episode, Evaluation, Experiment

#: The database `train()` appends to, and the commands read, unless told otherwise.
METRICS_DB = "metrics.db"
_TABLES = (Experiment.__table__, Episode.__table__, Evaluation.__table__)  # type: ignore[attr-defined]
#: Columns added to a table after it was first released: an older database gains them.
_ADDED_COLUMNS = {"episode": ("alpha",)}
#: How long a connection waits for another process's lock (seconds).
_BUSY_TIMEOUT = 30.0
_engines: dict[Path, Engine] = {}
_lock = threading.Lock()


def get_db_engine(path: str | os.PathLike[str] = METRICS_DB) -> Engine:
    """The engine for the metrics database at `path`, creating file and tables if missing.

    Engines are cached per resolved path so repeated calls share one connection
    pool instead of leaking new ones. Raises `ValueError` naming the path when the
    file exists but is not (and cannot become) a Velora metrics database.
    """
    resolved = Path(path).expanduser().resolve()
    with _lock:
        engine = _engines.get(resolved)
        if engine is not None and not resolved.exists():
            # The file was deleted under us: pooled connections point at a ghost.
            engine.dispose()
            engine = None
        if engine is None:
            engine = _open(resolved)
            _engines[resolved] = engine
        return engine


def _open(path: Path) -> Engine:
    try:
        _create_schema(path)
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{path} is not a usable Velora metrics database: {err}") from err
    engine = create_engine(
        URL.create("sqlite", database=str(path)), connect_args={"timeout": _BUSY_TIMEOUT}
    )
    event.listen(engine, "connect", _set_pragmas)
    return engine


def _create_schema(path: Path) -> None:
    """Create whichever tables and indexes are missing, safely against other processes.

    Two trainings may open a new database at the same moment: one transaction that
    takes the write lock up front (`BEGIN IMMEDIATE`; the other waits for it) and
    `IF NOT EXISTS` make creating the schema, or adding a table to an older database,
    a no-op for whoever comes second. A foreign database whose same-named tables lack
    our columns is a `ValueError`, and is left as it was.
    """
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None)
    try:
        if _schema_complete(connection, path):
            return  # nothing to write: a read-only file is fine
        connection.execute("BEGIN IMMEDIATE")
        try:
            _create_missing(connection, path)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        _use_wal(connection)
    finally:
        connection.close()


def _schema_complete(connection: sqlite3.Connection, path: Path) -> bool:
    """Whether every table and index is there (checking the tables' columns)."""
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    for table in _TABLES:
        if table.name in names:
            _check_columns(connection, table, path)
            if _missing_added_columns(connection, table):
                return False
    wanted = {table.name for table in _TABLES}
    wanted |= {str(index.name) for table in _TABLES for index in table.indexes}
    return wanted <= names


def _create_missing(connection: sqlite3.Connection, path: Path) -> None:
    dialect = sqlite.dialect()
    for table in _TABLES:
        connection.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        _check_columns(connection, table, path)
        for name in _missing_added_columns(connection, table):
            column_type = table.columns[name].type.compile(dialect=dialect)
            connection.execute(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}")
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            create = CreateIndex(index, if_not_exists=True).compile(dialect=dialect)
            connection.execute(str(create))


def _check_columns(connection: sqlite3.Connection, table: Any, path: Path) -> None:
    """A foreign database's same-named table lacking our columns is a `ValueError`."""
    found = _columns(connection, table)
    missing = sorted(set(table.columns.keys()) - found - set(_ADDED_COLUMNS.get(table.name, ())))
    if missing:
        raise ValueError(
            f"{path} is not a Velora metrics database: table {table.name!r} "
            f"lacks columns {missing}. Use another path or move the file."
        )


def _columns(connection: sqlite3.Connection, table: Any) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table.name})")}


def _missing_added_columns(connection: sqlite3.Connection, table: Any) -> list[str]:
    """The columns of `_ADDED_COLUMNS` an older database's table does not have yet."""
    found = _columns(connection, table)
    return [name for name in _ADDED_COLUMNS.get(table.name, ()) if name not in found]


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL (it stays so). SQLite answers this pragma "locked" at once
    rather than waiting while another process holds a lock, so retry for a while."""
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """NORMAL sync is safe under WAL (set once per file, in `_create_schema`)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _forget_engines_after_fork() -> None:
    """A forked child must not reuse the parent's SQLite connections."""
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines_after_fork)
