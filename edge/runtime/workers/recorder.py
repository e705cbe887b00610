"""The recorder worker: writes one record per triggered part, with its final verdict from the robot link.

The robot link's ledger says when a part was triggered and, exactly once, how it ended; inference
sends the frame beside it. A part triggered under a robot-link boot that has since been replaced
(the robot link died) is closed as FAULT, so every triggered sequence gets exactly one record.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.records.journal import event_key
from edge.records.replay import JournalReplay
from edge.records.store import ORPHAN_MARK, DuplicateRecordError, RecordError, RecordStore
from edge.runtime.messages import ImageNote, LedgerEvent, Trigger
from edge.runtime.transport import Receiver
from edge.runtime.workers.base import Worker
from edge.runtime.workers.record_of import record_from_event

log = logging.getLogger(__name__)

POLL_MS = 50
IMAGE_WAIT_S = 0.5  # how long a final verdict waits for its frame before it is stored without it
MAX_HELD_IMAGES = 64
# Records written without their frame (it came after IMAGE_WAIT_S): a frame arriving later for one of the
# last this many is still kept with its evidence (RecordStore.attach_late), so a loaded machine costs a
# record its picture only when the frame never comes.
MAX_MISSED_IMAGES = 256
DRAIN_S = 2.0
# Ledger events per step: each may commit a row (fsync), so a backlog must not keep the loop from its
# heartbeat; else the supervisor kills a busy recorder as stuck and its backlog is lost.
LEDGER_BATCH = 20
# A record the store could not write (disk full, read-only, I/O error) is held and retried, never dropped:
# a crash would lose the whole backlog. Images of held records beyond this many are let go (the record
# is still written, without its picture).
RETRY_S = 0.5
MAX_HELD_RETRY_IMAGES = 64
# The robot link journals every final (edge/records/journal.py); what never reached the database (a
# killed recorder, a power cut) is replayed from it. A line waits JOURNAL_GRACE_S for its ledger message
# (which carries the image) before it is replayed without it.
JOURNAL_POLL_S = 1.0
JOURNAL_GRACE_S = 2.0


@dataclass
class _Waiting:
    event: LedgerEvent
    since: float


class RecorderWorker(Worker):
    name = "recorder"

    def setup(self) -> None:
        ep = self.endpoints
        # The store first: a recorder that cannot open it (disk read-only, full) must not take events
        # off the robot link's queue and die with them; unbound, they wait at the sender for the next.
        self.store = RecordStore(self.config.records)
        self.ledger: Receiver[LedgerEvent] = Receiver(self.zmq, ep.ledger, LedgerEvent, hwm=100000)
        self.images: Receiver[ImageNote] = Receiver(self.zmq, ep.images, ImageNote, hwm=200)
        report = self.store.recover()
        log.info("records recovery: %s", report)
        self.poller = zmq.Poller()
        self.poller.register(self.ledger.socket, zmq.POLLIN)
        self.poller.register(self.images.socket, zmq.POLLIN)
        self.held_images: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.held_heatmaps: dict[tuple[int, int], dict[str, bytes]] = {}
        self.held_evidence: dict[tuple[int, int], dict[str, Any]] = {}
        self.missed_images: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.open_parts: dict[tuple[int, int], Trigger] = {}
        self.waiting: dict[tuple[int, int], _Waiting] = {}
        self.boot_id: int | None = None
        self.counts = {
            "records": 0,
            "orphans_closed": 0,
            "duplicates": 0,
            "images_dropped": 0,
            "images_late": 0,
        }
        self.unwritten: deque[tuple[LedgerEvent, np.ndarray | None, dict[str, bytes]]] = deque()
        self.next_retry = 0.0
        self.journal = JournalReplay(self.config.records.dir, JOURNAL_GRACE_S)
        self.next_journal = 0.0
        self.counts.update(journal_replayed=0, journal_orphans=0, orphans_upgraded=0)

    def step(self) -> None:
        ready = dict(self.poller.poll(POLL_MS))
        if self.images.socket in ready:
            self._drain_images()
        if self.ledger.socket in ready:
            for _ in range(LEDGER_BATCH):
                got = self.ledger.recv(0)
                if got is None:
                    break
                self._on_ledger(got[0])
        self._flush_waiting(force=False)
        self._retry_unwritten(force=False)
        if time.monotonic() >= self.next_journal:
            self._replay_journal(force=False)
            self.next_journal = time.monotonic() + JOURNAL_POLL_S
        self._update_state()

    def _update_state(self) -> None:
        journal = {**self.journal.counts, "pending": self.journal.pending}
        self.detail = {
            **self.counts,
            "open": len(self.open_parts),
            "journal": journal,
            **self.store.stats().__dict__,
        }
        if self.unwritten:
            # Verdicts keep flowing (the records are off the inspection path); this says they wait.
            self.state = "degraded"
            self.detail["degraded"] = (
                f"{len(self.unwritten)} record(s) held: the records disk cannot be written"
            )
        elif self.state == "degraded":
            self.state = "ready"

    def _drain_images(self) -> None:
        for _ in range(100):
            got = self.images.recv(0)
            if got is None:
                return
            note, image = got
            if image is None:
                continue
            if (note.boot_id, note.seq) in self.missed_images:
                self._attach_late(note, image)
                continue
            self.held_images[(note.boot_id, note.seq)] = image.copy()
            if note.heatmaps:
                self.held_heatmaps[(note.boot_id, note.seq)] = _png_bytes(note.heatmaps)
            if note.evidence:
                self.held_evidence[(note.boot_id, note.seq)] = dict(note.evidence)
            while len(self.held_images) > MAX_HELD_IMAGES:
                dropped, _ = self.held_images.popitem(last=False)
                self.held_heatmaps.pop(dropped, None)
                self.held_evidence.pop(dropped, None)
                self.counts["images_dropped"] += 1

    def _attach_late(self, note: ImageNote, image: np.ndarray) -> None:
        """A frame for a record already written without it: kept now, with its heat maps and evidence."""
        key = (note.boot_id, note.seq)
        del self.missed_images[key]
        heatmaps = _png_bytes(note.heatmaps) if note.heatmaps else {}
        try:
            stored = self.store.attach_late(note.boot_id, note.seq, image, heatmaps, note.evidence)
        except (sqlite3.Error, OSError, RecordError) as exc:
            log.error("records: part %s's late frame not kept (%s)", key, exc)
            return
        if stored is not None:
            self.counts["images_late"] += 1
            log.info("part %s: frame and evidence kept after its record (they came late)", key)

    def _on_ledger(self, event: LedgerEvent) -> None:
        key = (event.trigger.boot_id, event.trigger.seq)
        if self.boot_id != event.trigger.boot_id:
            self._close_orphans(event.trigger.boot_id)
            self.boot_id = event.trigger.boot_id
        if event.kind == "triggered":
            self.open_parts[key] = event.trigger
            return
        self.open_parts.pop(key, None)
        self.waiting[key] = _Waiting(event, time.monotonic())

    def _close_orphans(self, new_boot: int) -> None:
        """The robot link restarted: parts it had triggered will never be finalised by it."""
        for key, trigger in list(self.open_parts.items()):
            if key[0] != new_boot:
                self._write(_orphan_event(trigger, f"robot link restarted {ORPHAN_MARK}"))
                del self.open_parts[key]
                self.counts["orphans_closed"] += 1

    def _flush_waiting(self, force: bool) -> None:
        now = time.monotonic()
        for key, waiting in list(self.waiting.items()):
            result = waiting.event.result
            expects_image = result is not None and bool(result.model.sha256)
            if key in self.held_images or not expects_image or force or now - waiting.since > IMAGE_WAIT_S:
                self._write(waiting.event)
                del self.waiting[key]

    def _write(self, event: LedgerEvent, image: np.ndarray | None = None) -> None:
        key = (event.trigger.boot_id, event.trigger.seq)
        image = self.held_images.pop(key, image)
        heatmaps = self.held_heatmaps.pop(key, {})
        evidence = self.held_evidence.pop(key, None)
        if evidence is not None:
            event = _with_evidence(event, evidence)
        if self.unwritten:  # keep the order: behind the records already waiting for the disk
            self._hold(event, image, heatmaps)
            return
        record = record_from_event(event)
        try:
            self.store.add(record, image, heatmaps)
        except (sqlite3.Error, OSError) as exc:
            log.error("records: cannot write part %s (%s): held, retried every %.1f s", key, exc, RETRY_S)
            self._hold(event, image, heatmaps)
            return
        except DuplicateRecordError:
            self._on_duplicate(event)
            return
        self.counts["records"] += 1
        result = event.result
        if image is None and result is not None and result.model.sha256:
            self.missed_images[key] = None
            while len(self.missed_images) > MAX_MISSED_IMAGES:
                self.missed_images.popitem(last=False)

    def _on_duplicate(self, event: LedgerEvent) -> None:
        """A record is already stored: an orphan is replaced by the real final; a final replayed from the
        journal before its ledger message is the same verdict; anything else is a bug upstream."""
        key = event_key(event)
        try:
            if event.kind == "finalised" and self.store.upgrade_orphan(record_from_event(event)):
                self.counts["orphans_upgraded"] += 1
                log.warning("part %s: orphan record replaced by its final verdict %s", key, event.verdict)
                return
            if self.store.get(*key).verdict is (event.verdict or Verdict.FAULT):
                log.info("part %s: already recorded (from the journal)", key)
                return
        except (sqlite3.Error, RecordError) as exc:
            log.error("part %s: stored record not checked (%s)", key, exc)
        self.counts["duplicates"] += 1
        log.error("duplicate final verdict for part %s: kept the first", key)

    def _replay_journal(self, force: bool) -> None:
        """Write the journal's finals that never reached the database; close parts of dead boots."""
        try:
            due = self.journal.poll(force)
            held = {event_key(entry[0]) for entry in self.unwritten}
            for event in due if force else due[: LEDGER_BATCH * 5]:
                key = event_key(event)
                if key not in self.waiting and key not in held:  # else on its way to the database
                    self._replay_one(key, event)
            self.journal.delete_finished()
        except (sqlite3.Error, OSError) as exc:
            log.error("records: journal replay failed (%s); tried again in %.0f s", exc, JOURNAL_POLL_S)

    def _replay_one(self, key: tuple[int, int], journaled: LedgerEvent) -> None:
        stored = self.store.stored_kind(*key)
        if stored == "final" or (stored == "orphan" and journaled.kind == "triggered"):
            self.journal.settle(key)
            return
        event = journaled
        if journaled.kind == "triggered":  # its boot died with the part in flight
            self.counts["journal_orphans"] += 1
            event = _orphan_event(journaled.trigger, f"robot link stopped {ORPHAN_MARK}")
        elif stored == "none":
            self.counts["journal_replayed"] += 1
            log.warning("part %s: final verdict %s recorded from the journal", key, event.verdict)
        self.open_parts.pop(key, None)
        self._write(event)  # an orphan record is upgraded there (a duplicate)
        if not (self.unwritten and event_key(self.unwritten[-1][0]) == key):
            self.journal.settle(key)

    def _hold(self, event: LedgerEvent, image: np.ndarray | None, heatmaps: dict[str, bytes]) -> None:
        if image is not None and sum(h[1] is not None for h in self.unwritten) >= MAX_HELD_RETRY_IMAGES:
            image, heatmaps = None, {}  # bounded memory: the record is kept, its picture is not
            self.counts["images_dropped"] += 1
        self.unwritten.append((event, image, heatmaps))
        self.counts["unwritten"] = len(self.unwritten)

    def _retry_unwritten(self, force: bool) -> None:
        """Write held records in order until one fails again (then wait RETRY_S)."""
        now = time.monotonic()
        if not self.unwritten or (not force and now < self.next_retry):
            return
        held = len(self.unwritten)
        for _ in range(held if force else LEDGER_BATCH):  # bounded per step, like the ledger
            if not self.unwritten:
                break
            event, image, heatmaps = self.unwritten[0]
            try:
                self.store.add(record_from_event(event), image, heatmaps)
            except DuplicateRecordError:
                pass  # written before a failure was reported (e.g. the commit landed): the first stands
            except (sqlite3.Error, OSError):
                self.next_retry = now + RETRY_S
                break
            else:
                self.counts["records"] += 1
            self.unwritten.popleft()
        self.counts["unwritten"] = len(self.unwritten)
        if not self.unwritten:
            log.warning("records: writable again, the held record(s) are written")
        elif force:
            log.error("records: %d held record(s) could not be written before the stop", len(self.unwritten))

    def teardown(self) -> None:
        if not hasattr(self, "store"):
            return
        if not hasattr(self, "poller"):  # setup failed after opening the store
            self.store.close()
            return
        # Drain what the robot link sent before it stopped: no finished inspection is lost.
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            ready = dict(self.poller.poll(100))
            if not ready:
                break
            if self.images.socket in ready:
                self._drain_images()
            if self.ledger.socket in ready:
                got = self.ledger.recv(0)
                if got is not None:
                    self._on_ledger(got[0])
        self._flush_waiting(force=True)
        self._retry_unwritten(force=True)
        self._replay_journal(force=True)
        for trigger in list(self.open_parts.values()):
            self._write(_orphan_event(trigger, f"appliance stopped {ORPHAN_MARK}"))
        self.open_parts.clear()
        self.store.close()
        self.ledger.close()
        self.images.close()


def _png_bytes(heatmaps: dict[str, str]) -> dict[str, bytes]:
    """The note's heat maps as PNG bytes; one that is not base64 is dropped (a picture, not a verdict)."""
    decoded = {}
    for stage, data in heatmaps.items():
        try:
            decoded[stage] = base64.b64decode(data, validate=True)
        except ValueError:
            log.warning("heat map of stage %s is not base64: not kept", stage)
    return decoded


def _with_evidence(event: LedgerEvent, evidence: dict[str, Any]) -> LedgerEvent:
    """The event with inference's evidence on its result, so that a held (unwritten) record keeps it."""
    if event.result is None:
        return event
    return event.model_copy(update={"result": event.result.model_copy(update={"evidence": evidence})})


def _orphan_event(trigger: Trigger, reason: str) -> LedgerEvent:
    error = ErrorCode.WORKER
    return LedgerEvent(
        kind="finalised",
        trigger=trigger,
        verdict=Verdict.FAULT,
        reasons=(f"FAULT ({error.kind}): {reason}",),
        error_code=error,
        wall_decided=time.time(),
    )
