"""Journal replay (the recorder's side): reads the journal's new lines and says which final verdicts never
reached the database, then deletes the segments whose every part is settled.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from edge.records.journal import JOURNAL_DIR, Key, event_key, lock_name, parse_segment_name
from edge.runtime.messages import LedgerEvent

log = logging.getLogger(__name__)


@dataclass
class _Segment:
    boot_id: int
    index: int
    offset: int = 0
    closed: bool = False
    keys: set[Key] = field(default_factory=set)


@dataclass
class _Pending:
    event: LedgerEvent
    first_seen: float
    segments: set[str]


class JournalReplay:
    """Reads the journal's new lines and says which events are due for replay.

    A final is due `grace_s` after it was first read (its ledger message normally arrives first); a
    part triggered under a dead boot with no final anywhere is due the same way, as an orphan. The
    caller calls settle(key) once the database holds the part's record.
    """

    def __init__(
        self, records_dir: Path, grace_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.dir = records_dir / JOURNAL_DIR
        self.grace_s = grace_s
        self._clock = clock
        self._segments: dict[str, _Segment] = {}
        self._pending: dict[Key, _Pending] = {}
        self._dead: set[int] = set()
        self.counts = {"lines": 0, "torn": 0, "segments_deleted": 0}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def poll(self, force: bool = False) -> list[LedgerEvent]:
        """Read new lines; the events due now (finals, and triggered-only parts of dead boots)."""
        self._read_new()
        now = self._clock()
        due = []
        for pending in self._pending.values():
            if not force and now - pending.first_seen < self.grace_s:
                continue
            event = pending.event
            if event.kind == "finalised" or event.trigger.boot_id in self._dead:
                due.append(event)
        return due

    def settle(self, key: Key) -> None:
        """The part's record is in the database: its lines no longer keep their segments."""
        pending = self._pending.pop(key, None)
        for name in pending.segments if pending else ():
            seg = self._segments.get(name)
            if seg is not None:
                seg.keys.discard(key)

    def delete_finished(self) -> int:
        """Delete closed segments whose every part is settled, and the locks of dead boots left empty."""
        deleted = 0
        for name, seg in list(self._segments.items()):
            if not seg.closed or seg.keys:
                continue
            try:
                (self.dir / name).unlink(missing_ok=True)
            except OSError:
                continue  # read-only for now: tried again on the next poll
            del self._segments[name]
            deleted += 1
        for boot in self._dead - {s.boot_id for s in self._segments.values()}:
            with contextlib.suppress(OSError):
                (self.dir / lock_name(boot)).unlink(missing_ok=True)
        self.counts["segments_deleted"] += deleted
        return deleted

    def _read_new(self) -> None:
        try:
            names = sorted(p.name for p in self.dir.iterdir())
        except FileNotFoundError:
            return
        found = {name: parsed for name in names if (parsed := parse_segment_name(name)) is not None}
        newest: dict[int, int] = {}
        for boot, index in found.values():
            newest[boot] = max(index, newest.get(boot, index))
        for boot in newest:
            if boot not in self._dead and self._boot_is_dead(boot):
                self._dead.add(boot)
                if (self.dir / lock_name(boot)).exists():
                    log.warning(
                        "journal: boot %d ended without a clean stop (killed, crashed or power lost);"
                        " its parts are settled from the journal",
                        boot,
                    )
        for name, (boot, index) in found.items():
            seg = self._segments.setdefault(name, _Segment(boot, index))
            if not seg.closed:
                # Closed: the writer moved on to a later segment, or its boot is gone.
                closed = index < newest[boot] or boot in self._dead
                self._read_segment(name, seg, closed)
                seg.closed = closed
        for name in set(self._segments) - set(found):  # deleted by someone else: forget it
            del self._segments[name]

    def _boot_is_dead(self, boot: int) -> bool:
        try:
            fd = os.open(self.dir / lock_name(boot), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its writer holds it: alive
        finally:
            os.close(fd)
        return True

    def _read_segment(self, name: str, seg: _Segment, closed: bool) -> None:
        try:
            with (self.dir / name).open("rb") as fh:
                fh.seek(seg.offset)
                data = fh.read()
        except OSError as exc:
            log.warning("journal %s: cannot read (%s); tried again", name, exc)
            return
        complete, newline, tail = data.rpartition(b"\n")
        lines = complete.split(b"\n") if newline else []
        seg.offset += len(data) - len(tail)
        if tail and closed:
            # A kill (or a full disk) in the middle of a write: the verdict also went by the ledger.
            log.warning("journal %s: torn last line (%d bytes) skipped", name, len(tail))
            self.counts["torn"] += 1
            seg.offset += len(tail)
        for line in lines:
            self._take_line(name, seg, line)

    def _take_line(self, name: str, seg: _Segment, line: bytes) -> None:
        if not line.strip():
            return
        try:
            event = LedgerEvent.model_validate_json(line)
        except ValidationError:
            log.warning("journal %s: unreadable line (%d bytes) skipped", name, len(line))
            self.counts["torn"] += 1
            return
        self.counts["lines"] += 1
        key = event_key(event)
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(event, self._clock(), {name})
        else:
            pending.segments.add(name)
            if event.kind == "finalised" and pending.event.kind != "finalised":
                pending.event = event
                pending.first_seen = self._clock()
        seg.keys.add(key)
