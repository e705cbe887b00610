"""The records database layout, its connections, and the mapping between rows and records.

One row per inspection (list-like fields as JSON text), one per line alarm raised live, and one per
acknowledgement of line alarms.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from edge.errors import LinesideError
from edge.judge.inspection import Detection, Verdict
from edge.records.model import InspectionRecord, detection_to_json

DB_FILE = "records.db"
IMAGES_DIR = "images"
QUARANTINE_DIR = "quarantine"
SCHEMA_VERSION = 5
# Version 2 added `stages` (each judge's verdict, score, threshold, margin), version 3 `evidence` (why the
# verdict: rule, margin, runner-ups, crops), version 4 the `alarms` table (line alarms raised live,
# edge/records/alarms.py), version 5 the `alarm_acks` table (who acknowledged which alarms, when). The
# writer upgrades an older database in place, in one transaction, keeping every record; readers read one
# as it is (its records have no stages or evidence, it has no alarms or acknowledgements).
_READABLE_VERSIONS = (1, 2, 3, 4, SCHEMA_VERSION)
# One row per alarm raised on the live line: its chart and rule for queries, the whole alarm (values,
# limits, the parts that triggered it) as JSON, its chart picture relative to the records folder.
ALARMS_DDL = """
CREATE TABLE IF NOT EXISTS alarms (
    id         INTEGER PRIMARY KEY,
    raised_at  REAL    NOT NULL,
    boot_id    INTEGER NOT NULL,
    chart      TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    alarm      TEXT    NOT NULL,
    chart_png  TEXT
);
CREATE INDEX IF NOT EXISTS alarms_by_time ON alarms (raised_at);
"""
# One row per acknowledgement that released charts: when, from where (robot, page, cli), who (a login, the
# token, the CLI's user; none from the robot), the charts released (JSON list), and the last part the
# charts had been fed then, so that rebuilding the charts from the records releases them at that part.
ACKS_DDL = """
CREATE TABLE IF NOT EXISTS alarm_acks (
    id         INTEGER PRIMARY KEY,
    acked_at   REAL    NOT NULL,
    source     TEXT    NOT NULL,
    user       TEXT,
    charts     TEXT    NOT NULL,
    after_boot INTEGER,
    after_seq  INTEGER
);
CREATE INDEX IF NOT EXISTS alarm_acks_by_time ON alarm_acks (acked_at);
"""
_UPGRADE_1_TO_2 = "ALTER TABLE inspections ADD COLUMN stages TEXT NOT NULL DEFAULT '[]';"
_UPGRADE_2_TO_3 = "ALTER TABLE inspections ADD COLUMN evidence TEXT NOT NULL DEFAULT '{}';"
_UPGRADES = {
    1: _UPGRADE_1_TO_2 + "\n" + _UPGRADE_2_TO_3 + ALARMS_DDL + ACKS_DDL,
    2: _UPGRADE_2_TO_3 + ALARMS_DDL + ACKS_DDL,
    3: ALARMS_DDL + ACKS_DDL,
    4: ACKS_DDL,
}

# keep_rank orders eviction: lowest rank goes first, oldest (lowest id) first within a rank.
RANK_ACCEPT = 0
RANK_ACCEPT_NEAR_THRESHOLD = 1
RANK_REJECT_OR_FAULT = 2

_DDL = """
CREATE TABLE IF NOT EXISTS inspections (
    id             INTEGER PRIMARY KEY,
    boot_id        INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    part_id        TEXT,
    recipe         TEXT    NOT NULL,
    verdict        TEXT    NOT NULL CHECK (verdict IN ('ACCEPT', 'REJECT', 'FAULT')),
    reasons        TEXT    NOT NULL,
    error_code     INTEGER NOT NULL,
    detections     TEXT    NOT NULL,
    model_name     TEXT    NOT NULL,
    model_version  TEXT    NOT NULL,
    model_sha256   TEXT    NOT NULL,
    triggered_at   REAL    NOT NULL,
    decided_at     REAL    NOT NULL,
    latency_ms     TEXT    NOT NULL,
    near_threshold INTEGER NOT NULL,
    late           INTEGER NOT NULL,
    late_note      TEXT    NOT NULL DEFAULT '',
    image_path     TEXT,
    image_bytes    INTEGER NOT NULL DEFAULT 0,
    image_evicted  INTEGER NOT NULL DEFAULT 0,
    keep_rank      INTEGER NOT NULL,
    stages         TEXT    NOT NULL DEFAULT '[]',
    evidence       TEXT    NOT NULL DEFAULT '{}',
    UNIQUE (boot_id, seq)
);
CREATE INDEX IF NOT EXISTS inspections_by_time ON inspections (triggered_at);
CREATE INDEX IF NOT EXISTS inspections_images_by_eviction
    ON inspections (keep_rank, id) WHERE image_path IS NOT NULL;
"""
_DDL += ALARMS_DDL + ACKS_DDL

_RECORD_COLUMNS = (
    "boot_id, seq, part_id, recipe, verdict, reasons, error_code, detections, model_name, model_version, "
    "model_sha256, triggered_at, decided_at, latency_ms, near_threshold, late, late_note, image_path, "
    "image_evicted, stages, evidence"
)
SELECT_RECORD = f"SELECT {_RECORD_COLUMNS} FROM inspections"
_SELECT_RECORD_OLD = {
    1: SELECT_RECORD.replace(", stages, evidence FROM", ", '[]', '{}' FROM"),
    2: SELECT_RECORD.replace(", evidence FROM", ", '{}' FROM"),
}


def select_record(conn: sqlite3.Connection) -> str:
    """SELECT_RECORD for this database's schema version (older ones lack the stages or evidence column)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    return _SELECT_RECORD_OLD.get(version, SELECT_RECORD)


def open_writer(
    db_path: Path, synchronous: Literal["FULL", "NORMAL"], busy_timeout_s: float
) -> sqlite3.Connection:
    """Open (creating if needed) the database for the one writer: WAL, autocommit, explicit transactions."""
    conn = sqlite3.connect(db_path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LinesideError(f"{db_path}: cannot switch the records database to WAL (got {mode})")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version not in (0, *_READABLE_VERSIONS):
            raise LinesideError(f"{db_path}: records schema version {version}, expected {SCHEMA_VERSION}")
        if version == 0:
            _create_schema(conn)
        elif version in _UPGRADES:
            _create_schema(conn, _UPGRADES[version])  # also the writability probe
        else:
            _probe_writable(conn, db_path)
    except sqlite3.Error as exc:  # e.g. a read-only filesystem: no -wal/-shm can be created
        conn.close()
        raise LinesideError(f"{db_path}: records database is not writable ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _probe_writable(conn: sqlite3.Connection, db_path: Path) -> None:
    """SQLite opens a database on a read-only filesystem read-only without a word; the one writer must
    find out now (and not start) rather than at its first record."""
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise LinesideError(f"{db_path}: records database is not writable ({exc})") from None


def _create_schema(conn: sqlite3.Connection, ddl: str = _DDL) -> None:
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{ddl}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_reader(db_path: Path, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """Open the database read-only; in WAL mode this reads a consistent snapshot while the writer runs."""
    return open_existing(db_path, "ro", busy_timeout_s)


def open_existing(
    db_path: Path, mode: Literal["ro", "rw"], busy_timeout_s: float = 5.0
) -> sqlite3.Connection:
    """Open an existing records database of this schema version (never creates one: a typo in a path
    must not make a new, empty database); LinesideError in one line otherwise."""
    if not db_path.is_file():
        raise LinesideError(f"{db_path}: no records database")
    purpose = "for writing " if mode == "rw" else ""
    try:
        conn = sqlite3.connect(
            f"{db_path.resolve().as_uri()}?mode={mode}",
            uri=True,
            timeout=busy_timeout_s,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        raise LinesideError(f"{db_path}: cannot open the records database {purpose}({exc})") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LinesideError(f"{db_path}: not a readable records database ({exc})") from exc
    if version not in _READABLE_VERSIONS:
        conn.close()
        raise LinesideError(f"{db_path}: records schema version {version}, expected {SCHEMA_VERSION}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (disk full, busy) can leave the transaction open: end it here.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def keep_rank(record: InspectionRecord) -> int:
    if record.verdict is not Verdict.ACCEPT:
        return RANK_REJECT_OR_FAULT
    return RANK_ACCEPT_NEAR_THRESHOLD if record.near_threshold else RANK_ACCEPT


def record_to_row(record: InspectionRecord, image_bytes: int) -> dict[str, Any]:
    """Named parameters for INSERT_RECORD."""
    return {
        "boot_id": record.boot_id,
        "seq": record.seq,
        "part_id": record.part_id,
        "recipe": record.recipe,
        "verdict": record.verdict.value,
        "reasons": json.dumps(list(record.reasons)),
        "error_code": int(record.error_code),
        "detections": json.dumps([detection_to_json(d) for d in record.detections]),
        "model_name": record.model_name,
        "model_version": record.model_version,
        "model_sha256": record.model_sha256,
        "triggered_at": record.triggered_at,
        "decided_at": record.decided_at,
        "latency_ms": json.dumps(record.latency_ms),
        "near_threshold": int(record.near_threshold),
        "late": int(record.late),
        "late_note": record.late_note,
        "image_path": record.image_path,
        "image_bytes": image_bytes,
        "image_evicted": int(record.image_evicted),
        "keep_rank": keep_rank(record),
        "stages": json.dumps(list(record.stages)),
        "evidence": json.dumps(record.evidence),
    }


INSERT_RECORD = (
    f"INSERT INTO inspections ({_RECORD_COLUMNS}, image_bytes, keep_rank) VALUES ("
    + ", ".join(f":{name.strip()}" for name in _RECORD_COLUMNS.split(","))
    + ", :image_bytes, :keep_rank)"
)


def row_to_record(row: tuple[Any, ...]) -> InspectionRecord:
    """Decode one row of SELECT_RECORD."""
    (boot_id, seq, part_id, recipe, verdict, reasons, error_code, detections, model_name, model_version,
     model_sha256, triggered_at, decided_at, latency_ms, near_threshold, late, late_note, image_path,
     image_evicted, stages, evidence) = row  # fmt: skip
    return InspectionRecord(
        boot_id=int(boot_id),
        seq=int(seq),
        part_id=part_id,
        recipe=recipe,
        verdict=Verdict(verdict),
        reasons=tuple(json.loads(reasons)),
        error_code=int(error_code),
        detections=tuple(Detection.from_json(d) for d in json.loads(detections)),
        model_name=model_name,
        model_version=model_version,
        model_sha256=model_sha256,
        triggered_at=float(triggered_at),
        decided_at=float(decided_at),
        latency_ms={str(k): float(v) for k, v in json.loads(latency_ms).items()},
        near_threshold=bool(near_threshold),
        late=bool(late),
        image_path=image_path,
        late_note=late_note,
        image_evicted=bool(image_evicted),
        stages=tuple(json.loads(stages)),
        evidence=dict(json.loads(evidence) or {}),
    )
