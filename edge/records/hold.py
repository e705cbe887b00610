"""One live line per records folder: the supervisor holds an exclusive lock on it for its whole run.

Two lines writing one folder would interleave their parts in one database and evict each other's images
under one quota (seen: a second demo run printing the first one's parts). The lock is an flock, so the
kernel releases it however the supervisor ends, a SIGKILL included: a stale lock file is never a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from edge.errors import LinesideError

LOCK_FILE = ".line.lock"


def hold_records_dir(folder: Path) -> IO[str]:
    """The open, locked lock file of `folder` (keep it open for the run; closing it releases the lock);
    LinesideError naming records.dir when another live line holds it or the folder cannot be written."""
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as exc:
        raise LinesideError(f"records.dir: {folder}: cannot write ({exc.strerror})") from None
    # Held open read only: a file open for writing would keep the folder's file system from being
    # remounted read-only (the recorder's own read-only fault handling, tests/faults, needs that).
    handle = open(path, encoding="utf-8")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read().strip() or "pid unknown"
        handle.close()
        raise LinesideError(f"records.dir: {folder} is in use by another running line ({holder})") from None
    # Who holds it, for the refusal's message; only a courtesy: the lock is what keeps a second line out.
    with contextlib.suppress(OSError):
        path.write_text(f"pid {os.getpid()}\n", encoding="utf-8")
    return handle
