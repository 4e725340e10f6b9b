"""Crash-safe file writes."""

import ctypes
import functools
import json
import math
import os
import shutil
import sys
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


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a file through a temporary sibling file and a rename: readers never see
    half a file, and an existing one is replaced whole."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with open(staging, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write strict JSON atomically (`write_bytes_atomic`); NaN and infinities become
    null so any JSON parser reads the result."""
    text = json.dumps(_strict_json(data), indent=2, allow_nan=False)
    write_bytes_atomic(path, text.encode("utf-8"))


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


@functools.cache
def _renameat2() -> Any:
    """libc's `renameat2`, or None where the system has no such call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux `renameat2(RENAME_EXCHANGE)`); False where the
    system has no such call."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(b))
    return True


def replace_dir(new: Path, target: Path) -> None:
    """Put the complete folder `new` in `target`'s place, replacing what is there.

    On Linux the two are swapped in one step, so a crash at any moment leaves `target`
    whole, old or new; elsewhere the old folder is moved aside first, which leaves a
    moment without `target`. The old folder is then deleted.
    """
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # it now holds the old folder
    else:
        aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, aside)
        os.rename(new, target)
        shutil.rmtree(aside)
    fsync_path(target.parent)
