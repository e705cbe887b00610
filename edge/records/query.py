"""Reading records back: filtered queries on a read-only connection (safe while the writer runs), and
CSV / JSON Lines export."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from edge.errors import LinesideError
from edge.judge.inspection import Verdict
from edge.records.model import InspectionRecord
from edge.records.schema import open_reader, row_to_record, select_record

CSV_COLUMNS = (
    "boot_id",
    "seq",
    "part_id",
    "recipe",
    "verdict",
    "error_code",
    "reasons",
    "detections",
    "model_name",
    "model_version",
    "model_sha256",
    "triggered_at",
    "decided_at",
    "total_ms",
    "latency_ms",
    "near_threshold",
    "late",
    "late_note",
    "image_path",
    "image_evicted",
)


def query(
    db_path: Path,
    verdict: Verdict | str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = None,
) -> list[InspectionRecord]:
    """Records triggered in [since, until) (epoch seconds), oldest first; with `limit`, the latest
    `limit` of them (like `tail`). Raises LinesideError naming the file if it is not a records db."""
    clauses: list[str] = []
    params: list[Any] = []
    if verdict is not None:
        try:
            clauses.append("verdict = ?")
            params.append(Verdict(verdict).value)
        except ValueError as exc:
            raise LinesideError(f"verdict: {verdict!r} is not one of ACCEPT, REJECT, FAULT") from exc
    if since is not None:
        clauses.append("triggered_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("triggered_at < ?")
        params.append(until)
    if limit is not None and limit < 0:
        raise LinesideError(f"limit: must be >= 0, got {limit}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(-1 if limit is None else limit)  # LIMIT -1: no limit
    conn = open_reader(Path(db_path))
    try:
        newest = f"{select_record(conn)}{where} ORDER BY triggered_at DESC, boot_id DESC, seq DESC LIMIT ?"
        rows = conn.execute(newest, params).fetchall()
    except sqlite3.DatabaseError as exc:
        raise LinesideError(f"{db_path}: cannot read records ({exc})") from exc
    finally:
        conn.close()
    rows.reverse()
    return [row_to_record(row) for row in rows]


def iso_utc(epoch_s: float) -> str:
    """2024-05-01T12:30:05.123+00:00: what a spreadsheet or a person reads."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat(timespec="milliseconds")


def export_csv(records: Iterable[InspectionRecord], out: TextIO) -> int:
    """One row per record, times as ISO 8601 UTC, lists as JSON text; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        data = record.to_json()
        writer.writerow(
            [
                record.boot_id,
                record.seq,
                "" if record.part_id is None else record.part_id,
                record.recipe,
                record.verdict.value,
                record.error_code,
                json.dumps(data["reasons"]),
                json.dumps(data["detections"]),
                record.model_name,
                record.model_version,
                record.model_sha256,
                iso_utc(record.triggered_at),
                iso_utc(record.decided_at),
                record.latency_ms.get("total", ""),
                json.dumps(record.latency_ms),
                int(record.near_threshold),
                int(record.late),
                record.late_note,
                record.image_path or "",
                int(record.image_evicted),
            ]
        )
        count += 1
    return count


def export_jsonl(records: Iterable[InspectionRecord], out: TextIO) -> int:
    """One JSON object per line, lossless (InspectionRecord.from_json reads it back); returns the count."""
    count = 0
    for record in records:
        out.write(json.dumps(record.to_json(), sort_keys=True))
        out.write("\n")
        count += 1
    return count
