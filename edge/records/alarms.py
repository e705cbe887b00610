"""Line alarms in the records database: one row per alarm raised on the live line (schema 4), one per
acknowledgement that released charts (schema 5).

The rows hold codes and numbers only (the alarm as JSON, edge/spc/alarm.py `Alarm.to_json`), so that an
alarm re-renders in any language; its chart picture is a file under the records folder.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.records.schema import DB_FILE, open_reader
from edge.spc.ack import Acknowledgement

ALARMS_DIR = "alarms"  # the chart pictures, under the records folder


@dataclass(frozen=True)
class RecordedAlarm:
    """An alarm as stored: when, on which start of the appliance, and its chart picture (if drawn)."""

    id: int
    raised_at: float
    boot_id: int
    alarm: dict[str, Any]  # Alarm.to_json()
    chart_png: str | None  # relative to the records folder


def insert_alarm(
    conn: sqlite3.Connection, alarm: dict[str, Any], raised_at: float, boot_id: int, chart_png: str | None
) -> int:
    """Store one alarm (autocommit: one statement is one transaction); its row id."""
    cursor = conn.execute(
        "INSERT INTO alarms (raised_at, boot_id, chart, rule, alarm, chart_png) VALUES (?, ?, ?, ?, ?, ?)",
        (raised_at, boot_id, alarm["chart"], alarm["rule"], json.dumps(alarm), chart_png),
    )
    return int(cursor.lastrowid or 0)


def recorded_alarms(records_dir: Path, since: float | None = None) -> list[RecordedAlarm]:
    """The alarms stored in a records folder, oldest first (none in a database older than schema 4)."""
    conn = open_reader(records_dir / DB_FILE)
    try:
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) < 4:
            return []
        rows = conn.execute(
            "SELECT id, raised_at, boot_id, alarm, chart_png FROM alarms WHERE raised_at >= ? ORDER BY id",
            (since if since is not None else float("-inf"),),
        ).fetchall()
    finally:
        conn.close()
    return [RecordedAlarm(int(i), float(t), int(b), json.loads(a), p) for i, t, b, a, p in rows]


def insert_ack(conn: sqlite3.Connection, ack: Acknowledgement) -> int:
    """Store one acknowledgement (autocommit: one statement is one transaction); its row id."""
    after = ack.after_part or (None, None)
    cursor = conn.execute(
        "INSERT INTO alarm_acks (acked_at, source, user, charts, after_boot, after_seq) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (ack.acked_at, ack.source, ack.user, json.dumps(list(ack.charts)), *after),
    )
    return int(cursor.lastrowid or 0)


def recorded_acks(records_dir: Path, since: float | None = None) -> list[Acknowledgement]:
    """The acknowledgements stored in a records folder, oldest first (none before schema 5)."""
    conn = open_reader(records_dir / DB_FILE)
    try:
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) < 5:
            return []
        rows = conn.execute(
            "SELECT acked_at, source, user, charts, after_boot, after_seq FROM alarm_acks "
            "WHERE acked_at >= ? ORDER BY id",
            (since if since is not None else float("-inf"),),
        ).fetchall()
    finally:
        conn.close()
    return [
        Acknowledgement(
            float(at),
            str(source),
            user,
            tuple(json.loads(charts)),
            None if boot is None else (int(boot), int(seq)),
        )
        for at, source, user, charts, boot, seq in rows
    ]
