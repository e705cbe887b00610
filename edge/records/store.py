"""The inspection record store: one SQLite (WAL) writer plus images on disk under a quota.

Order of writes, chosen so that a crash at any instant leaves no row pointing at a missing file:
adding writes the image (temp, fsync, rename) before committing the row; evicting commits the row's
"no image" before unlinking the file. Either crash leaves at worst a file no row points at, which
recover() clears on the next open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.records.config import RecordsConfig
from edge.records.crops import encoded_crops
from edge.records.images import (
    crop_relpath,
    encode_image,
    heat_relpath,
    image_relpath,
    remove_image,
    write_image,
)
from edge.records.model import InspectionRecord
from edge.records.recovery import RecoveryReport, recover
from edge.records.schema import (
    DB_FILE,
    IMAGES_DIR,
    INSERT_RECORD,
    open_writer,
    record_to_row,
    row_to_record,
    select_record,
    transaction,
)

log = logging.getLogger(__name__)

_EVICTION_BATCH = 256  # rows per eviction transaction
# Every record the recorder writes for a part whose verdict it never got says so with these words; a
# final found later (in the journal) replaces such a record instead of being refused as a duplicate.
ORPHAN_MARK = "before the verdict"
_IS_ORPHAN = (
    f"verdict = 'FAULT' AND error_code = {int(ErrorCode.WORKER)} AND instr(reasons, '{ORPHAN_MARK}') > 0"
)
_UPGRADE = (
    "UPDATE inspections SET part_id = :part_id, recipe = :recipe, verdict = :verdict, reasons = :reasons, "
    "error_code = :error_code, detections = :detections, model_name = :model_name, "
    "model_version = :model_version, model_sha256 = :model_sha256, decided_at = :decided_at, "
    "latency_ms = :latency_ms, near_threshold = :near_threshold, late = :late, keep_rank = :keep_rank, "
    "stages = :stages, evidence = :evidence "
    f"WHERE boot_id = :boot_id AND seq = :seq AND {_IS_ORPHAN}"
)
_WAL_CHECKPOINT_PAGES = 128  # ~512 KiB of WAL before a checkpoint (SQLite's default: 1000)
_WAL_LIMIT_BYTES = 1 << 20
_SAMPLE_EPSILON = 1e-9  # so that rate 1.0 (or 0.5 twice) reaches a whole credit despite rounding


class RecordError(Exception):
    """A record operation the caller must decide about (not a user-fixable config problem)."""


class DuplicateRecordError(RecordError):
    """A record for this (boot_id, seq) is already stored; the first one stands."""


class UnknownRecordError(RecordError, LookupError):
    """No record is stored for this (boot_id, seq)."""


@dataclass(frozen=True)
class RecordStats:
    """Counters kept in memory as the store runs (loaded from the database on open)."""

    records: int
    images_kept: int
    image_bytes: int
    images_evicted: int  # ever, by the quota
    image_errors: int  # since open: images that could not be encoded or written (record kept)
    eviction_errors: int  # since open: quota evictions that failed (retried on the next add)
    quota_bytes: int
    evidence_errors: int = 0  # since open: evidence crops that could not be drawn or written (record kept)


class RecordStore:
    """Stores inspection records; the one writer of `<dir>/records.db`. Thread-safe; one per process."""

    def __init__(self, cfg: RecordsConfig) -> None:
        self._cfg = cfg
        self._dir = cfg.dir
        (self._dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        self._quota_bytes = int(cfg.quota_mb * 1024 * 1024)
        self._lock = threading.Lock()
        self._accept_credit = 0.0
        self._image_errors = 0
        self._eviction_errors = 0
        self._evidence_errors = 0
        self._records = self._images_kept = self._image_bytes = self._images_evicted = 0
        self._conn: sqlite3.Connection | None = open_writer(self.db_path, cfg.synchronous, cfg.busy_timeout_s)
        # SQLite's default WAL (1000 pages, ~4 MB, never shrunk) can fill a small records disk by itself,
        # and a full disk then keeps the recorder from opening the database again: checkpoint sooner and
        # truncate the WAL after each checkpoint.
        self._conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        self._conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        try:
            self.last_recovery: RecoveryReport = self.recover()
            with self._lock:
                self._enforce_quota()  # the quota may have shrunk since the last run
        except BaseException:
            self.close()
            raise

    @property
    def db_path(self) -> Path:
        return self._dir / DB_FILE

    @property
    def records_dir(self) -> Path:
        return self._dir

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RecordError(f"{self.db_path}: record store is closed")
        return self._conn

    def exists(self, boot_id: int, seq: int) -> bool:
        with self._lock:
            return self._exists(boot_id, seq)

    def _exists(self, boot_id: int, seq: int) -> bool:
        query = "SELECT 1 FROM inspections WHERE boot_id = ? AND seq = ?"
        return self._db().execute(query, (boot_id, seq)).fetchone() is not None

    def stored_kind(self, boot_id: int, seq: int) -> Literal["none", "orphan", "final"]:
        """Whether the part has a record, and whether it is only an orphan (closed without its verdict)."""
        query = f"SELECT {_IS_ORPHAN} FROM inspections WHERE boot_id = ? AND seq = ?"
        with self._lock:
            row = self._db().execute(query, (boot_id, seq)).fetchone()
        if row is None:
            return "none"
        return "orphan" if row[0] else "final"

    def upgrade_orphan(self, record: InspectionRecord) -> bool:
        """Replace an orphan record's FAULT by the part's real final verdict (its image, if any, stays).
        False when the stored record is not an orphan (or there is none): nothing changed."""
        with self._lock, transaction(self._db()) as conn:
            return conn.execute(_UPGRADE, record_to_row(record, 0)).rowcount == 1

    def get(self, boot_id: int, seq: int) -> InspectionRecord:
        """The stored record; raises UnknownRecordError if there is none."""
        with self._lock:
            query = f"{select_record(self._db())} WHERE boot_id = ? AND seq = ?"
            row = self._db().execute(query, (boot_id, seq)).fetchone()
        if row is None:
            raise UnknownRecordError(f"no record for {boot_id}:{seq}")
        return row_to_record(row)

    def add(
        self,
        record: InspectionRecord,
        image: np.ndarray | None = None,
        heatmaps: Mapping[str, bytes] | None = None,
    ) -> InspectionRecord:
        """Store a record (and its image if the policy keeps it); returns the record as stored.

        Raises DuplicateRecordError if (boot_id, seq) is already stored; nothing is changed then.
        An image that cannot be encoded or written is logged and counted; the record is still stored,
        because a part without a record is worse than a record without a picture. `heatmaps` (PNG bytes by
        stage) are kept beside the image, with it, and leave with it under the quota.
        """
        if record.image_path is not None or record.image_evicted:
            raise ValueError(f"record {record.boot_id}:{record.seq}: image_path is set by the store")
        with self._lock:
            if self._exists(record.boot_id, record.seq):
                raise DuplicateRecordError(f"record {record.boot_id}:{record.seq} is already stored")
            stored, image_bytes = self._save_image(record, image, heatmaps or {})
            try:
                with transaction(self._db()) as conn:
                    conn.execute(INSERT_RECORD, record_to_row(stored, image_bytes))
            except BaseException as exc:
                if stored.image_path is not None and not self._maybe_committed(record):
                    remove_image(self._dir, stored.image_path)
                if isinstance(exc, sqlite3.IntegrityError):
                    raise DuplicateRecordError(f"record {record.boot_id}:{record.seq}: {exc}") from exc
                raise
            self._records += 1
            return self._count_kept(stored, image_bytes)

    def attach_late(
        self,
        boot_id: int,
        seq: int,
        image: np.ndarray,
        heatmaps: Mapping[str, bytes] | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> InspectionRecord | None:
        """Keep a part's frame, heat maps and evidence that arrived after its record was written without
        them (a loaded machine: the recorder waits only so long for a frame); kept as `add` would have kept
        them. None, and nothing changed, when the record has an image or evidence already, or is unknown.
        Evidence naming another verdict than the record's is not kept (the recorder's own rule)."""
        with self._lock:
            query = f"{select_record(self._db())} WHERE boot_id = ? AND seq = ?"
            row = self._db().execute(query, (boot_id, seq)).fetchone()
            if row is None:
                return None
            record = row_to_record(row)
            if record.image_path is not None or record.image_evicted or record.evidence:
                return None
            agrees = evidence is not None and evidence.get("verdict") == record.verdict.value
            record = replace(record, evidence=dict(evidence) if agrees and evidence is not None else {})
            stored, image_bytes = self._save_image(record, image, heatmaps or {})
            if stored.image_path is None and not stored.evidence:
                return None
            try:
                with transaction(self._db()) as conn:
                    conn.execute(
                        "UPDATE inspections SET image_path = :image_path, image_bytes = :image_bytes, "
                        "evidence = :evidence WHERE boot_id = :boot_id AND seq = :seq AND image_path IS NULL",
                        {
                            "image_path": stored.image_path,
                            "image_bytes": image_bytes,
                            "evidence": json.dumps(stored.evidence),
                            "boot_id": boot_id,
                            "seq": seq,
                        },
                    )
            except BaseException:
                if stored.image_path is not None and not self._maybe_committed_late(stored):
                    remove_image(self._dir, stored.image_path)
                raise
            return self._count_kept(stored, image_bytes)

    def _count_kept(self, stored: InspectionRecord, image_bytes: int) -> InspectionRecord:
        """Count a committed record's image in the quota, then keep to the quota (which may evict it)."""
        if stored.image_path is not None:
            self._images_kept += 1
            self._image_bytes += image_bytes
        if stored.key in self._enforce_quota_after_add():
            stored = replace(stored, image_path=None, image_evicted=True)
        return stored

    def _maybe_committed_late(self, record: InspectionRecord) -> bool:
        """After a failed late update: does the row point at the image anyway? If unsure, keep the file."""
        try:
            query = "SELECT 1 FROM inspections WHERE boot_id = ? AND seq = ? AND image_path = ?"
            row = self._db().execute(query, (record.boot_id, record.seq, record.image_path)).fetchone()
            return row is not None
        except sqlite3.Error:
            return True

    def _maybe_committed(self, record: InspectionRecord) -> bool:
        """After a failed insert: could the row be there anyway? If unsure, keep the file (an orphan is
        quarantined by recover(); a row pointing at a deleted file would be a lie)."""
        try:
            return self._exists(record.boot_id, record.seq)
        except sqlite3.Error:
            return True

    def _enforce_quota_after_add(self) -> set[tuple[int, int]]:
        # The record is committed: a failed eviction must not make the add look failed (a retry would
        # then be refused as a duplicate). It is logged and counted; the next add tries again.
        try:
            return self._enforce_quota()
        except (sqlite3.Error, OSError) as exc:
            self._eviction_errors += 1
            log.error("records %s: eviction failed (%s); images may exceed the quota", self._dir, exc)
            return set()

    def mark_late(self, boot_id: int, seq: int, note: str) -> InspectionRecord:
        """Flag a finalised record: a result for it arrived too late and was dropped. Notes accumulate."""
        with self._lock, transaction(self._db()) as conn:
            cursor = conn.execute(
                "UPDATE inspections SET late = 1, late_note = CASE WHEN late_note = '' THEN :note "
                "ELSE late_note || '; ' || :note END WHERE boot_id = :boot_id AND seq = :seq",
                {"note": note, "boot_id": boot_id, "seq": seq},
            )
            if cursor.rowcount == 0:
                raise UnknownRecordError(f"late result for {boot_id}:{seq}, which has no record")
        return self.get(boot_id, seq)

    def stats(self) -> RecordStats:
        with self._lock:
            return RecordStats(
                records=self._records,
                images_kept=self._images_kept,
                image_bytes=self._image_bytes,
                images_evicted=self._images_evicted,
                image_errors=self._image_errors,
                eviction_errors=self._eviction_errors,
                quota_bytes=self._quota_bytes,
                evidence_errors=self._evidence_errors,
            )

    def recover(self) -> RecoveryReport:
        """Reconcile images/ with the database (see edge.records.recovery); runs on open."""
        with self._lock:
            report = recover(self._db(), self._dir)
            self._load_counters()
        return report

    def _load_counters(self) -> None:
        row = (
            self._db()
            .execute(
                "SELECT COUNT(*), COUNT(image_path), COALESCE(SUM(image_bytes), 0), "
                "COALESCE(SUM(image_evicted), 0) FROM inspections"
            )
            .fetchone()
        )
        self._records, self._images_kept, self._image_bytes, self._images_evicted = (int(v) for v in row)

    def _wants_image(self, record: InspectionRecord) -> bool:
        cfg = self._cfg
        if record.near_threshold and cfg.save_near_threshold:
            return True
        if record.verdict is Verdict.FAULT:
            return cfg.save_faults
        if record.verdict is Verdict.REJECT:
            return cfg.save_rejects
        # Plain ACCEPT: an even, reproducible spread instead of a random draw.
        self._accept_credit += cfg.accept_sample_rate
        if self._accept_credit >= 1.0 - _SAMPLE_EPSILON:
            self._accept_credit -= 1.0
            return True
        return False

    def _save_image(
        self, record: InspectionRecord, image: np.ndarray | None, heatmaps: Mapping[str, bytes]
    ) -> tuple[InspectionRecord, int]:
        if image is None or not self._wants_image(record):
            return record, 0
        relpath = image_relpath(record, self._cfg.image_format)
        record, crop_bytes = self._save_crops(record, image, heatmaps, relpath)
        try:
            data = encode_image(image, self._cfg.image_format, self._cfg.jpeg_quality)
            # Heat maps first: the image's rename is what makes the set count (recover() keeps a heat
            # map only beside a referenced image).
            for stage, png in heatmaps.items():
                write_image(self._dir, heat_relpath(relpath, stage), png)
            write_image(self._dir, relpath, data)
        except (ValueError, OSError) as exc:
            companions = [heat_relpath(relpath, stage) for stage in heatmaps]
            companions += [crop["file"] for crop in record.evidence.get("crops", [])]
            for companion in companions:
                with contextlib.suppress(OSError):
                    (self._dir / companion).unlink(missing_ok=True)
            self._image_errors += 1
            log.error("record %s:%s: image not saved (%s); record kept", record.boot_id, record.seq, exc)
            return replace(record, evidence={k: v for k, v in record.evidence.items() if k != "crops"}), 0
        kept = len(data) + sum(len(png) for png in heatmaps.values()) + crop_bytes
        return replace(record, image_path=relpath), kept

    def _save_crops(
        self, record: InspectionRecord, image: np.ndarray, heatmaps: Mapping[str, bytes], relpath: str
    ) -> tuple[InspectionRecord, int]:
        """Write the evidence crops beside the image-to-be (before it: its rename makes the set count);
        the record's evidence lists them. A crop that cannot be drawn or written is counted and logged,
        and the record is kept without crops."""
        if not record.evidence or (record.verdict is Verdict.ACCEPT and not record.near_threshold):
            return record, 0
        written: list[str] = []
        try:
            crops = []
            for number, (png, meta) in enumerate(encoded_crops(image, heatmaps, record.evidence)):
                path = crop_relpath(relpath, number)
                write_image(self._dir, path, png)
                written.append(path)
                crops.append({**meta, "file": path, "bytes": len(png)})
        except Exception as exc:  # a picture of the verdict is never worth a record
            for path in written:
                with contextlib.suppress(OSError):
                    (self._dir / path).unlink(missing_ok=True)
            self._evidence_errors += 1
            log.error("record %s:%s: evidence crops not saved (%s)", record.boot_id, record.seq, exc)
            return record, 0
        evidence = {**record.evidence, "crops": crops}
        return replace(record, evidence=evidence), sum(c["bytes"] for c in crops)

    def _enforce_quota(self) -> set[tuple[int, int]]:
        """Evict images until under quota; returns the (boot_id, seq) whose image went."""
        evicted: set[tuple[int, int]] = set()
        while self._image_bytes > self._quota_bytes:
            rows = (
                self._db()
                .execute(
                    "SELECT id, boot_id, seq, image_path, image_bytes FROM inspections "
                    "WHERE image_path IS NOT NULL ORDER BY keep_rank, id LIMIT ?",
                    (_EVICTION_BATCH,),
                )
                .fetchall()
            )
            if not rows:  # counters disagree with the table; trust the table
                self._load_counters()
                break
            excess = self._image_bytes - self._quota_bytes
            chosen = []
            for row in rows:
                chosen.append(row)
                excess -= int(row[4])
                if excess <= 0:
                    break
            self._evict(chosen)
            evicted.update((int(row[1]), int(row[2])) for row in chosen)
        return evicted

    def _evict(self, rows: list[tuple[int, int, int, str, int]]) -> None:
        conn = self._db()
        # The commit must be durable before any unlink (even under synchronous=NORMAL): otherwise a
        # power loss could roll the row back to pointing at a file already deleted.
        conn.execute("PRAGMA synchronous=FULL")
        try:
            with transaction(conn):
                conn.executemany(
                    "UPDATE inspections SET image_path = NULL, image_bytes = 0, image_evicted = 1 "
                    "WHERE id = ?",
                    [(row[0],) for row in rows],
                )
        finally:
            conn.execute(f"PRAGMA synchronous={self._cfg.synchronous}")
        for _row_id, _boot, _seq, relpath, _nbytes in rows:
            try:
                remove_image(self._dir, relpath)
            except OSError as exc:  # the row already says evicted; recover() deletes the leftover
                log.error("records %s: could not delete evicted image %s (%s)", self._dir, relpath, exc)
            with contextlib.suppress(OSError):  # drop the day folder once it is empty
                os.rmdir((self._dir / relpath).parent)
        self._images_kept -= len(rows)
        self._image_bytes -= sum(int(row[4]) for row in rows)
        self._images_evicted += len(rows)
