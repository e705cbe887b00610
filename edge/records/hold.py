"""One live line per records folder: the supervisor holds an exclusive lock on it for its whole run.

Two lines writing one folder would interleave their parts in one database and evict each other's images
under one quota (seen: a second demo run printing the first one's parts). The lock is an flock, so the
kernel releases it however the supervisor ends, a SIGKILL included: a stale lock file is never a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from edge.errors import LinesideError

LOCK_FILE = ".line.lock"


def hold_records_dir(folder: Path) -> IO[str]:
    """The open, locked lock file of `folder` (keep it open for the run; closing it releases the lock);
    LinesideError naming records.dir when another live line holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "pid unknown"
        handle.close()
        raise LinesideError(f"records.dir: {folder} is in use by another running line ({holder})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle
