"""Inspection counters per shift in ISO 22400-2 terms, read from the records database (read-only).

Inspected = every recorded part, good = ACCEPT, rejected = REJECT, faults = FAULT (a reject to the
robot too, so scrap = rejected + faults), and the quality ratio (yield) = good / inspected.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from edge.errors import LinesideError
from edge.records.schema import DB_FILE, open_reader, row_to_record, select_record


@dataclass(frozen=True)
class ShiftCount:
    """One shift's counters: [start, end) in epoch seconds, local-time label."""

    start: float
    end: float
    inspected: int = 0
    good: int = 0
    rejected: int = 0
    faults: int = 0

    @property
    def scrap(self) -> int:
        return self.rejected + self.faults

    @property
    def quality_ratio(self) -> float | None:
        """ISO 22400-2 quality ratio QR = GQ / PQ; None before the shift's first part."""
        return None if self.inspected == 0 else self.good / self.inspected

    def add(self, verdict: str) -> ShiftCount:
        return ShiftCount(
            self.start,
            self.end,
            self.inspected + 1,
            self.good + (verdict == "ACCEPT"),
            self.rejected + (verdict == "REJECT"),
            self.faults + (verdict == "FAULT"),
        )


@dataclass(frozen=True)
class RecordSpan:
    """What the records database holds: how many records and from when to when (epoch seconds)."""

    count: int = 0
    first_at: float | None = None
    last_at: float | None = None


@dataclass(frozen=True)
class ResultsSnapshot:
    """Everything the inspection-results submodels show, at one moment."""

    taken_at: float
    shifts: tuple[ShiftCount, ...]  # newest first; shifts[0] is the current shift
    span: RecordSpan = RecordSpan()
    last: dict[str, Any] | None = None  # the newest record, as InspectionRecord.to_json()
    model: dict[str, str] | None = field(default=None)  # the model that judged the newest part


def shift_windows(starts: tuple[str, ...], now: float, kept: int) -> list[tuple[float, float]]:
    """The `kept` most recent shifts up to `now`, newest first, as [start, end) epoch seconds.

    Starts are local times of day; a shift ends where the next one starts (the last at the first of the
    next day), so a day is covered with no gap and no overlap, across daylight-saving changes too.
    """
    today = datetime.fromtimestamp(now).date()
    days = kept // len(starts) + 2
    moments: list[float] = []
    for back in range(-1, days + 1):
        day = today - timedelta(days=back)
        for start in starts:
            hour, minute = (int(part) for part in start.split(":"))
            moments.append(datetime(day.year, day.month, day.day, hour, minute).timestamp())
    moments.sort()
    windows = [(a, b) for a, b in pairwise(moments) if a <= now]
    windows.reverse()
    return windows[:kept]


def read_snapshot(records_dir: Path, starts: tuple[str, ...], kept: int, now: float) -> ResultsSnapshot:
    """Counters per shift and the newest record from `records_dir`; all zeros before the first record."""
    windows = shift_windows(starts, now, kept)
    empty = tuple(ShiftCount(a, b) for a, b in windows)
    db_path = records_dir / DB_FILE
    if not db_path.is_file():
        return ResultsSnapshot(now, empty)
    try:
        conn = open_reader(db_path)
    except (LinesideError, sqlite3.Error) as exc:
        raise LinesideError(f"{db_path}: cannot read records ({exc})") from None
    try:
        shifts = tuple(_count(conn, a, b) for a, b in windows)
        span = _span(conn)
        last = _newest(conn)
    except sqlite3.DatabaseError as exc:
        raise LinesideError(f"{db_path}: cannot read records ({exc})") from None
    finally:
        conn.close()
    model = None
    if last is not None and last.get("model_name"):
        model = {k: str(last[f"model_{k}"]) for k in ("name", "version", "sha256")}
    return ResultsSnapshot(now, shifts, span, last, model)


def _count(conn: sqlite3.Connection, start: float, end: float) -> ShiftCount:
    rows = conn.execute(
        "SELECT verdict, COUNT(*) FROM inspections"
        " WHERE triggered_at >= ? AND triggered_at < ? GROUP BY verdict",
        (start, end),
    ).fetchall()
    by = {str(v): int(n) for v, n in rows}
    return ShiftCount(
        start, end, sum(by.values()), by.get("ACCEPT", 0), by.get("REJECT", 0), by.get("FAULT", 0)
    )


def _span(conn: sqlite3.Connection) -> RecordSpan:
    count, first, last = conn.execute(
        "SELECT COUNT(*), MIN(triggered_at), MAX(triggered_at) FROM inspections"
    ).fetchone()
    return RecordSpan(int(count), first, last)


def _newest(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute(f"{select_record(conn)} ORDER BY triggered_at DESC, id DESC LIMIT 1").fetchone()
    return None if row is None else row_to_record(row).to_json()


def records_since(records_dir: Path, since: float, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` records triggered at or after `since`, oldest first (the records endpoint's page)."""
    db_path = records_dir / DB_FILE
    if not db_path.is_file():
        return []
    conn = open_reader(db_path)
    try:
        sql = f"{select_record(conn)} WHERE triggered_at >= ? ORDER BY triggered_at, id LIMIT ?"
        rows = conn.execute(sql, (since, limit)).fetchall()
    except sqlite3.DatabaseError as exc:
        raise LinesideError(f"{db_path}: cannot read records ({exc})") from None
    finally:
        conn.close()
    return [row_to_record(row).to_json() for row in rows]
