"""Operator marks on inspection records (escape, overkill, relabel): the data flywheel's human input.

Marks live in their own table of records.db, created on first use; the inspections table is never
changed. Each mark is one transaction (BEGIN IMMEDIATE ... COMMIT), so it is stored whole or not at all,
and the appliance can keep recording while an operator marks.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.errors import LinesideError
from edge.records.schema import open_existing, open_reader, transaction

MARK_KINDS = ("escape", "overkill", "relabel")
MARK_MEANING = {
    "escape": "accepted but defective: add the missed defect boxes",
    "overkill": "rejected but good: remove the false boxes",
    "relabel": "check and correct the boxes",
}

_DDL = """
CREATE TABLE IF NOT EXISTS marks (
    id        INTEGER PRIMARY KEY,
    boot_id   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('escape', 'overkill', 'relabel')),
    note      TEXT    NOT NULL DEFAULT '',
    marked_at REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS marks_by_record ON marks (boot_id, seq);
"""
_KEY = re.compile(r"^(?:(\d+):)?(\d+)$")


@dataclass(frozen=True)
class Mark:
    """One operator mark on the record (boot_id, seq); a record may carry several."""

    boot_id: int
    seq: int
    kind: str
    note: str
    marked_at: float


def _open_writer(db_path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open an existing records database for writing (never creates one: a typo must not make a new db)."""
    return open_existing(db_path, "rw", busy_timeout_s)


def resolve_key(db_path: Path, text: str) -> tuple[int, int]:
    """(boot_id, seq) from 'BOOT:SEQ' or a bare 'SEQ' (which must be unique across boots)."""
    match = _KEY.match(text.strip())
    if match is None:
        raise LinesideError(f"record {text!r}: expected SEQ or BOOT:SEQ (as `lineside records` lists them)")
    seq = int(match.group(2))
    conn = open_reader(db_path)
    try:
        query = "SELECT boot_id FROM inspections WHERE seq = ?"
        params: list[int] = [seq]
        if match.group(1) is not None:
            query += " AND boot_id = ?"
            params.append(int(match.group(1)))
        found = [int(row[0]) for row in conn.execute(query + " ORDER BY boot_id", params)]
    except sqlite3.DatabaseError as exc:
        raise LinesideError(f"{db_path}: cannot read records ({exc})") from exc
    finally:
        conn.close()
    if not found:
        raise LinesideError(f"{db_path}: no record {text}")
    if len(found) > 1:
        boots_text = ", ".join(f"{b}:{seq}" for b in found)
        raise LinesideError(f"record {text}: several boots have seq {seq}; give one of {boots_text}")
    return found[0], seq


def add_mark(
    db_path: Path,
    boot_id: int,
    seq: int,
    kind: str,
    note: str = "",
    *,
    now: float | None = None,
    busy_timeout_s: float = 5.0,
) -> Mark:
    """Store a mark on an existing record, in one transaction; LinesideError if the record is unknown."""
    if kind not in MARK_KINDS:
        raise LinesideError(f"mark kind {kind!r}: expected one of {', '.join(MARK_KINDS)}")
    mark = Mark(boot_id, seq, kind, note, time.time() if now is None else now)
    conn = _open_writer(db_path, busy_timeout_s)
    try:
        with transaction(conn):
            _create_table(conn)
            row = conn.execute(
                "SELECT 1 FROM inspections WHERE boot_id = ? AND seq = ?", (boot_id, seq)
            ).fetchone()
            if row is None:
                raise LinesideError(f"{db_path}: no record {boot_id}:{seq} to mark")
            conn.execute(
                "INSERT INTO marks (boot_id, seq, kind, note, marked_at) VALUES (?, ?, ?, ?, ?)",
                (mark.boot_id, mark.seq, mark.kind, mark.note, mark.marked_at),
            )
    except sqlite3.Error as exc:
        raise LinesideError(f"{db_path}: mark not stored ({exc})") from exc
    finally:
        conn.close()
    return mark


def _create_table(conn: sqlite3.Connection) -> None:
    # executescript would COMMIT the open transaction; run the statements one by one inside it.
    for statement in _DDL.split(";"):
        if statement.strip():
            conn.execute(statement)


def read_marks(db_path: Path) -> dict[tuple[int, int], list[Mark]]:
    """(boot_id, seq) -> marks, oldest first; empty when nothing was ever marked (no table yet)."""
    conn = open_reader(db_path)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'marks'"
        ).fetchone()
        if exists is None:
            return {}
        rows = conn.execute("SELECT boot_id, seq, kind, note, marked_at FROM marks ORDER BY id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise LinesideError(f"{db_path}: cannot read marks ({exc})") from exc
    finally:
        conn.close()
    marks: dict[tuple[int, int], list[Mark]] = {}
    for boot_id, seq, kind, note, marked_at in rows:
        marks.setdefault((int(boot_id), int(seq)), []).append(
            Mark(int(boot_id), int(seq), str(kind), str(note), float(marked_at))
        )
    return marks
