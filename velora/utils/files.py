"""Crash-safe file writes."""

import json
import math
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


def _strict_json(data: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by null, recursively."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _strict_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_strict_json(value) for value in data]
    return data


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write strict JSON through a temporary sibling file and a rename.

    Readers never see half a file; NaN and infinities become null so any JSON parser
    reads the result.
    """
    path = Path(path)
    staging = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with open(staging, "w") as f:
            json.dump(_strict_json(data), f, indent=2, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
