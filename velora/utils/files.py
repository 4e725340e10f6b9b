"""Crash-safe file writes."""

import json
import os
import uuid
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """Flush a file (or folder) that is already written to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON through a temporary sibling file and a rename: readers never see half a file."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with open(staging, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
