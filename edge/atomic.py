"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Write to a temporary file in the same folder, fsync it, rename it over the target, fsync the folder.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

DEFAULT_MODE = 0o644


def atomic_write_bytes(path: Path, data: bytes, keep_previous: bool = False) -> Path:
    """Write `data` to `path` atomically; with `keep_previous`, the old file is kept as `<name>.prev`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; the replacement keeps the old file's mode (new files: 0644).
        os.fchmod(fd, stat.S_IMODE(path.stat().st_mode) if path.exists() else DEFAULT_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str, keep_previous: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), keep_previous=keep_previous)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
