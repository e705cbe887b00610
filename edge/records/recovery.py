"""Bring the images folder and the database back into agreement after a crash or power loss.

Runs when the store opens: temp files go, orphan images go to quarantine/, rows whose file is gone lose
their image path. Quarantined files are kept for a person to look at and are not counted in the quota.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edge.records.images import image_of_heat, is_temp_name, parse_image_name
from edge.records.schema import IMAGES_DIR, QUARANTINE_DIR, transaction

log = logging.getLogger(__name__)

_MAX_NAME_SUFFIX = 1000  # quarantine names: x.jpg, x.jpg.1, ... bounded so a loop always ends
_LOG_EACH = 20  # log this many paths one by one, then only counts


@dataclass(frozen=True)
class RecoveryReport:
    """What recover() changed; all zero/empty on a clean start."""

    temp_files_removed: int
    evicted_leftovers_removed: int  # files whose row already says "evicted" (crash between commit and unlink)
    quarantined: tuple[str, ...]  # image paths (relative to the records dir) no record points at
    missing_cleared: tuple[str, ...]  # image paths whose file was gone; the row's path is now NULL
    empty_dirs_removed: int

    @property
    def changed(self) -> bool:
        return bool(
            self.temp_files_removed
            or self.evicted_leftovers_removed
            or self.quarantined
            or self.missing_cleared
        )

    def summary(self) -> str:
        return (
            f"{self.temp_files_removed} temp file(s) removed, {self.evicted_leftovers_removed} evicted "
            f"leftover(s) removed, {len(self.quarantined)} orphan image(s) quarantined, "
            f"{len(self.missing_cleared)} missing image path(s) cleared, "
            f"{self.empty_dirs_removed} empty folder(s) removed"
        )


def recover(conn: sqlite3.Connection, records_dir: Path) -> RecoveryReport:
    """Reconcile `records_dir/images` with the database owned by `conn` (the single writer)."""
    images_root = records_dir / IMAGES_DIR
    rows = conn.execute("SELECT id, image_path FROM inspections WHERE image_path IS NOT NULL")
    referenced: dict[str, int] = {path: row_id for row_id, path in rows}
    referenced_stems = {path.rsplit(".", 1)[0] for path in referenced}
    present: set[str] = set()
    temp_removed = leftovers_removed = 0
    quarantined: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(images_root):
        for name in filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(records_dir).as_posix()
            if is_temp_name(name):
                _unlink(full)
                temp_removed += 1
            elif rel in referenced:
                present.add(rel)
            elif image_of_heat(rel) in referenced_stems:
                pass  # a heat map beside a kept image
            elif _row_says_evicted(conn, name):
                _unlink(full)
                leftovers_removed += 1
            else:
                _quarantine(records_dir, full)
                quarantined.append(rel)
    missing = sorted(set(referenced) - present)
    if missing:
        with transaction(conn):
            conn.executemany(
                "UPDATE inspections SET image_path = NULL, image_bytes = 0 WHERE id = ?",
                [(referenced[path],) for path in missing],
            )
    report = RecoveryReport(
        temp_files_removed=temp_removed,
        evicted_leftovers_removed=leftovers_removed,
        quarantined=tuple(quarantined),
        missing_cleared=tuple(missing),
        empty_dirs_removed=_remove_empty_dirs(images_root),
    )
    _log_report(records_dir, report)
    return report


def _row_says_evicted(conn: sqlite3.Connection, name: str) -> bool:
    key = parse_image_name(name)
    if key is None:
        return False
    row = conn.execute(
        "SELECT image_evicted FROM inspections WHERE boot_id = ? AND seq = ? AND image_path IS NULL", key
    ).fetchone()
    return row is not None and bool(row[0])


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _quarantine(records_dir: Path, full: Path) -> Path:
    """Move an orphan to quarantine/<same sub-path>, never overwriting an earlier one."""
    target = records_dir / QUARANTINE_DIR / full.relative_to(records_dir / IMAGES_DIR)
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate = target
    for suffix in range(1, _MAX_NAME_SUFFIX + 1):
        if not candidate.exists():
            break
        candidate = target.with_name(f"{target.name}.{suffix}")
    else:
        raise OSError(f"{target}: too many quarantined files with this name")
    os.rename(full, candidate)
    return candidate


def _remove_empty_dirs(images_root: Path) -> int:
    removed = 0
    for dirpath, dirnames, filenames in os.walk(images_root, topdown=False):
        folder = Path(dirpath)
        if folder == images_root or filenames or any((folder / d).exists() for d in dirnames):
            continue
        try:
            folder.rmdir()
            removed += 1
        except OSError:
            pass  # not empty after all (a file appeared), keep it
    return removed


def _log_report(records_dir: Path, report: RecoveryReport) -> None:
    if not report.changed:
        log.info("records %s: recovery found nothing to repair", records_dir)
        return
    log.warning("records %s: recovery: %s", records_dir, report.summary())
    for path in report.quarantined[:_LOG_EACH]:
        log.warning("records %s: orphan image quarantined: %s", records_dir, path)
    for path in report.missing_cleared[:_LOG_EACH]:
        log.warning("records %s: image missing, path cleared: %s", records_dir, path)
