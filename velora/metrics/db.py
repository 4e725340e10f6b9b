"""Opening `metrics.db`: one cached, WAL-mode SQLite engine per file."""

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, inspect
from sqlalchemy.exc import DatabaseError
from sqlmodel import SQLModel

from velora.metrics.tables import Episode, Experiment

#: The database `train()` appends to, and the commands read, unless told otherwise.
METRICS_DB = "metrics.db"
_TABLES = (Experiment.__table__, Episode.__table__)  # type: ignore[attr-defined]
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
    engine = create_engine(URL.create("sqlite", database=str(path)))
    event.listen(engine, "connect", _set_pragmas)
    try:
        SQLModel.metadata.create_all(engine, tables=list(_TABLES))
        _check_schema(engine, path)
    except DatabaseError as err:
        engine.dispose()
        raise ValueError(f"{path} is not a usable Velora metrics database: {err.orig}") from err
    except ValueError:
        engine.dispose()
        raise
    return engine


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers query while training writes; NORMAL sync is safe under WAL."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _check_schema(engine: Engine, path: Path) -> None:
    """Catch a foreign database whose same-named tables lack our columns."""
    inspector = inspect(engine)
    for table in _TABLES:
        found = {col["name"] for col in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - found)
        if missing:
            raise ValueError(
                f"{path} is not a Velora metrics database: table {table.name!r} "
                f"lacks columns {missing}. Use another path or move the file."
            )


def _forget_engines_after_fork() -> None:
    """A forked child must not reuse the parent's SQLite connections."""
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines_after_fork)
