"""The final-verdict journal: the robot link appends each ledger event to a segment file under
`<records dir>/journal/`; the recorder replays what never reached its database (`replay.py`).

The append is a plain write() (the page cache outlives any process kill); fsync runs off the caller's
thread at most every FSYNC_EVERY_S (group commit), so a real power loss can take the last ~200 ms.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import threading
import time
from collections import deque
from pathlib import Path

from edge.atomic import fsync_dir
from edge.runtime.messages import LedgerEvent

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
SEGMENT_LINES = 256  # a segment rolls after this many lines ...
SEGMENT_AGE_S = 30.0  # ... or this long after its first line, so finished ones can be deleted
FSYNC_EVERY_S = 0.2
RETRY_S = 0.5  # a journal that cannot be written is tried again this often
MAX_HELD_LINES = 20000  # lines kept in memory while the journal cannot be written (~1 h at 5 parts/s)
_SEGMENT = re.compile(r"^(\d{10})-(\d{6})\.jsonl$")

Key = tuple[int, int]


def segment_name(boot_id: int, index: int) -> str:
    return f"{boot_id:010d}-{index:06d}.jsonl"


def lock_name(boot_id: int) -> str:
    """Held (flock) by the live writer of a boot; a boot whose lock can be taken is dead."""
    return f"{boot_id:010d}.lock"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    match = _SEGMENT.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def event_key(event: LedgerEvent) -> Key:
    return (event.trigger.boot_id, event.trigger.seq)


class JournalWriter:
    """Appends ledger events of one robot-link boot. append() never raises and never waits on fsync."""

    def __init__(
        self,
        records_dir: Path,
        boot_id: int,
        *,
        segment_lines: int = SEGMENT_LINES,
        segment_age_s: float = SEGMENT_AGE_S,
        fsync_every_s: float = FSYNC_EVERY_S,
        max_held: int = MAX_HELD_LINES,
    ) -> None:
        self.dir = records_dir / JOURNAL_DIR
        self.boot_id = boot_id
        self._segment_lines, self._segment_age_s = segment_lines, segment_age_s
        self._fsync_every_s = fsync_every_s
        self._mutex = threading.Lock()  # writes only; never held across an fsync
        self._held: deque[bytes] = deque()
        self._max_held = max_held
        self._lock_fd: int | None = None
        self._index = -1  # the segment being written; -1 until the first line
        self._lines = 0
        self._started = 0.0
        self._retry_at = 0.0
        self._unsynced: set[Path] = set()
        self._dir_unsynced = False
        self.counts = {"written": 0, "write_errors": 0, "held": 0, "held_dropped": 0}
        self.error: str | None = None  # the current failure, None while the journal is writable
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._thread.start()

    @property
    def failing(self) -> bool:
        return self.error is not None

    def append(self, event: LedgerEvent) -> bool:
        """Write one event line (to the page cache); False if it is held in memory instead."""
        line = (event.model_dump_json() + "\n").encode("utf-8")
        with self._mutex:
            if self._held and not self._write_held(time.monotonic()):
                self._hold(line)
                return False
            if not self._write_line(line):
                self._hold(line)
                return False
            return True

    def stats(self) -> dict[str, object]:
        detail: dict[str, object] = {**self.counts, "held": len(self._held), "segment": self._index}
        if self.error is not None:
            detail["error"] = self.error
        return detail

    def close(self, timeout_s: float = 2.0) -> None:
        """Write what is held (once), fsync, stop the thread, release the boot's lock."""
        with self._mutex:
            if self._held:
                self._write_held(float("inf"))
        self._stop.set()
        self._thread.join(timeout_s)
        self._sync()
        if self._lock_fd is not None:
            # A clean stop removes the lock file; one left behind by a dead boot tells the recorder that
            # boot was killed or lost power (it logs that once).
            with contextlib.suppress(OSError):
                (self.dir / lock_name(self.boot_id)).unlink()
            os.close(self._lock_fd)  # the flock goes with it: the recorder may now close our parts
            self._lock_fd = None

    # -- writing (under _mutex) -----------------------------------------------------------------
    def _write_line(self, line: bytes) -> bool:
        try:
            path = self._segment_for_next_line()
        except OSError as exc:
            self._failed(exc)
            return False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._failed(exc)
            return False
        # Opened per line, closed at once: no file of ours stays open for writing, so the records
        # filesystem can still be remounted read-only (what ext4 does on errors).
        try:
            written = os.write(fd, line)
        except OSError as exc:  # nothing was written
            self._failed(exc)
            return False
        finally:
            os.close(fd)
        if written != len(line):
            self._index += 1  # the torn tail stays the last thing in that segment
            self._lines = 0
            self._failed(OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)"))
            return False
        self._lines += 1
        self._unsynced.add(path)
        self.counts["written"] += 1
        if self.error is not None:
            log.warning("journal %s: writable again (%d held line(s) to write)", self.dir, len(self._held))
            self.error = None
        return True

    def _segment_for_next_line(self) -> Path:
        now = time.monotonic()
        if self._lock_fd is None:
            self._open_boot()
        if (
            self._index < 0
            or self._lines >= self._segment_lines
            or now - self._started >= self._segment_age_s
        ):
            self._index = max(self._index + 1, self._next_free_index())
            self._lines = 0
            self._started = now
            self._dir_unsynced = True
        return self.dir / segment_name(self.boot_id, self._index)

    def _open_boot(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / lock_name(self.boot_id), os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._dir_unsynced = True

    def _next_free_index(self) -> int:
        """After a restart with the same (random) boot id, never append to its old segments."""
        parsed = (parse_segment_name(name) for name in os.listdir(self.dir))
        return max((p[1] for p in parsed if p is not None and p[0] == self.boot_id), default=-1) + 1

    def _failed(self, exc: OSError) -> None:
        self.counts["write_errors"] += 1
        self._retry_at = time.monotonic() + RETRY_S
        if self.error is None:
            log.error("journal %s: cannot write (%s): final verdicts kept in memory, retried", self.dir, exc)
        self.error = f"{type(exc).__name__}: {exc.strerror or exc}"

    def _hold(self, line: bytes) -> None:
        if len(self._held) >= self._max_held:
            self._held.popleft()
            self.counts["held_dropped"] += 1
        self._held.append(line)
        self.counts["held"] = len(self._held)

    def _write_held(self, now: float) -> bool:
        """Write held lines in order; True when none is left."""
        if now < self._retry_at:
            return False
        while self._held:
            if not self._write_line(self._held[0]):
                return False
            self._held.popleft()
        self.counts["held"] = 0
        return True

    # -- the group commit thread ------------------------------------------------------------------
    def _sync_loop(self) -> None:
        while not self._stop.wait(self._fsync_every_s):
            self._sync()
            if self._held and self._mutex.acquire(timeout=0.05):
                try:
                    self._write_held(time.monotonic())
                finally:
                    self._mutex.release()

    def _sync(self) -> None:
        with self._mutex:
            paths, self._unsynced = self._unsynced, set()
            dir_dirty, self._dir_unsynced = self._dir_unsynced, False
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # read-only: never blocks a remount
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.debug("journal: fsync %s failed (%s)", path, exc)
        if dir_dirty:
            with contextlib.suppress(OSError):
                fsync_dir(self.dir)
