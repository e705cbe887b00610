"""Records and their evidence: schema 3 upgrades an older database in place keeping every record; evidence
that cannot be drawn costs its crops, never the record or its image; crops leave with their image under
the quota. Real SQLite files and images under tmp_path.
"""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edge.judge.inspection import Verdict
from edge.records.images import crop_files, heat_relpath
from edge.records.model import InspectionRecord
from edge.records.query import query
from edge.records.schema import ALARMS_DDL, DB_FILE, SCHEMA_VERSION
from edge.records.store import RecordStore
from lineside.commands.records_show import show_record
from tests.test_records import config, frame, record

# The layout as schema version 2 wrote it (edge/records/schema.py before evidence): a fixture of the past,
# so it must not follow the code.
V2_DDL = """
CREATE TABLE inspections (
    id INTEGER PRIMARY KEY, boot_id INTEGER NOT NULL, seq INTEGER NOT NULL, part_id TEXT,
    recipe TEXT NOT NULL, verdict TEXT NOT NULL CHECK (verdict IN ('ACCEPT', 'REJECT', 'FAULT')),
    reasons TEXT NOT NULL, error_code INTEGER NOT NULL, detections TEXT NOT NULL, model_name TEXT NOT NULL,
    model_version TEXT NOT NULL, model_sha256 TEXT NOT NULL, triggered_at REAL NOT NULL,
    decided_at REAL NOT NULL, latency_ms TEXT NOT NULL, near_threshold INTEGER NOT NULL,
    late INTEGER NOT NULL, late_note TEXT NOT NULL DEFAULT '', image_path TEXT,
    image_bytes INTEGER NOT NULL DEFAULT 0, image_evicted INTEGER NOT NULL DEFAULT 0,
    keep_rank INTEGER NOT NULL,
    stages TEXT NOT NULL DEFAULT '[]',
    UNIQUE (boot_id, seq)
);
CREATE INDEX inspections_by_time ON inspections (triggered_at);
"""
STAGES = [{"stage": "detector", "kind": "detect", "verdict": "REJECT", "score": 0.9, "threshold": 0.5}]
EVIDENCE: dict[str, Any] = {
    "v": 1,
    "verdict": "REJECT",
    "deciding_stage": "detector",
    "deciding_kind": "detect",
    "rule": {
        "stage": "detector",
        "code": "detect.reject",
        "class": "scratch",
        "score": 0.9,
        "threshold": 0.5,
        "margin": 0.4,
        "size": 8.0,
        "size_limit": 4.0,
        "size_margin": 4.0,
        "units": "px",
        "box": [10.0, 6.0, 18.0, 14.0],
    },
    "fired": [],
    "runner_ups": [],
    "stages": [],
    "near_threshold": False,
}


def _with(stored: InspectionRecord, evidence: dict[str, Any]) -> InspectionRecord:
    return replace(stored, evidence=evidence)


def _old_database(records_dir: Path, version: int, rows: int) -> None:
    """A database as schema `version` (1 to 4) left it, with `rows` records, the first with its image (and at
    version 4, one line alarm)."""
    (records_dir / "images" / "2024-05-01").mkdir(parents=True)
    conn = sqlite3.connect(records_dir / DB_FILE)
    stages = "\n    stages TEXT NOT NULL DEFAULT '[]',"
    ddl = {
        1: V2_DDL.replace(stages, ""),
        2: V2_DDL,
        3: V2_DDL.replace(stages, stages + "\n    evidence TEXT NOT NULL DEFAULT '{}',"),
        4: V2_DDL.replace(stages, stages + "\n    evidence TEXT NOT NULL DEFAULT '{}',") + ALARMS_DDL,
    }[version]
    conn.executescript(ddl)
    for seq in range(1, rows + 1):
        image = f"images/2024-05-01/1-{seq}-REJECT.png" if seq == 1 else None
        values = {
            "boot_id": 1, "seq": seq, "part_id": f"P{seq}", "recipe": "old", "verdict": "REJECT",
            "reasons": json.dumps([f"REJECT: scratch 0.9 part {seq}"]), "error_code": 0, "detections": "[]",
            "model_name": "m", "model_version": "1", "model_sha256": "", "triggered_at": 1.7e9 + seq,
            "decided_at": 1.7e9 + seq, "latency_ms": json.dumps({"total": 40.0}), "near_threshold": 0,
            "late": 0, "image_path": image, "image_bytes": 10 if image else 0, "keep_rank": 2,
        }  # fmt: skip
        if version >= 2:
            values["stages"] = json.dumps(STAGES)
        names = ", ".join(values)
        conn.execute(
            f"INSERT INTO inspections ({names}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
        if image:
            (records_dir / image).write_bytes(b"0123456789")
    if version == 4:
        conn.execute(
            "INSERT INTO alarms (raised_at, boot_id, chart, rule, alarm) VALUES (?, 1, 'reject_rate', "
            "'beyond_3sigma', '{}')",
            (1.7e9 + rows,),
        )
    conn.execute(f"PRAGMA user_version={version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_an_older_database_upgrades_in_place_keeping_every_record_and_image(
    tmp_path: Path, version: int
) -> None:
    records_dir = tmp_path / "records"
    _old_database(records_dir, version, rows=5)
    before = query(records_dir / DB_FILE)  # a reader reads the old version as it is
    assert len(before) == 5 and all(r.evidence == {} for r in before)
    with RecordStore(config(tmp_path)) as store:
        store.add(record(6), frame(6))
    conn = sqlite3.connect(records_dir / DB_FILE)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert conn.execute("SELECT count(*) FROM alarms").fetchone()[0] == (version == 4)  # version 4's table
    assert conn.execute("SELECT count(*) FROM alarm_acks").fetchone()[0] == 0  # version 5's, empty
    conn.close()
    after = query(records_dir / DB_FILE)
    assert [r.seq for r in after] == [1, 2, 3, 4, 5, 6]
    assert after[:5] == before, "every old record reads back unchanged"
    assert (
        after[0].image_path == "images/2024-05-01/1-1-REJECT.png"
        and (records_dir / after[0].image_path).is_file()
    )
    assert after[0].stages == (tuple(STAGES) if version >= 2 else ())
    out = io.StringIO()
    assert show_record(records_dir, "2", tmp_path / "old.png", stdout=out) == 0
    assert "no evidence kept" in out.getvalue() and (tmp_path / "old.png").stat().st_size > 0


def test_a_new_record_keeps_its_evidence_and_crops_and_they_leave_with_the_image(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        stored = store.add(_with(record(1), EVIDENCE), frame(1))
        assert stored.image_path is not None
        crops = crop_files(store.records_dir, stored.image_path)
        assert list(crops) == ["0"] and stored.evidence["crops"][0]["file"].endswith(".crop-0.png")
        assert query(store.db_path)[0].evidence == stored.evidence
        image_only = (store.records_dir / stored.image_path).stat().st_size
        assert store.stats().image_bytes == image_only + crops["0"].stat().st_size  # crops count in the quota
    with RecordStore(config(tmp_path, quota_mb=0.0001)) as store:  # a smaller quota evicts at open
        assert store.stats().image_bytes == 0
    assert not any(path.exists() for path in crops.values())
    assert query(tmp_path / "records" / DB_FILE)[0].image_evicted


def test_evidence_that_cannot_be_drawn_costs_its_crops_never_the_record_or_image(tmp_path: Path) -> None:
    broken = {**EVIDENCE, "rule": {**EVIDENCE["rule"], "box": ["left", 0, 1, 2]}}
    with RecordStore(config(tmp_path)) as store:
        stored = store.add(_with(record(1), broken), frame(1), {"detector": b"not a png"})
        assert stored.image_path is not None and (store.records_dir / stored.image_path).is_file()
        assert (store.records_dir / heat_relpath(stored.image_path, "detector")).is_file()
        assert crop_files(store.records_dir, stored.image_path) == {}
        assert "crops" not in stored.evidence and store.stats().evidence_errors == 1
        assert [r.key for r in query(store.db_path)] == [(1, 1)]


def test_an_accept_far_from_its_threshold_keeps_no_crops(tmp_path: Path) -> None:
    accept = {**EVIDENCE, "verdict": "ACCEPT", "rule": None, "runner_ups": [EVIDENCE["rule"]]}
    with RecordStore(config(tmp_path, accept_sample_rate=1.0)) as store:
        plain = store.add(_with(record(1, Verdict.ACCEPT), accept), frame(1))
        near = store.add(
            _with(record(2, Verdict.ACCEPT, near=True), {**accept, "near_threshold": True}), frame(2)
        )
    assert plain.image_path and crop_files(tmp_path / "records", plain.image_path) == {}
    assert near.image_path and list(crop_files(tmp_path / "records", near.image_path)) == ["0"]


def test_recovery_keeps_crops_beside_a_kept_image_and_quarantines_a_stray_one(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        stored = store.add(_with(record(1), EVIDENCE), frame(1))
    assert stored.image_path is not None
    kept = crop_files(tmp_path / "records", stored.image_path)["0"]
    stray = kept.with_name("1-9-REJECT.crop-0.png")  # a crash after the crop, before its image and row
    stray.write_bytes(kept.read_bytes())
    with RecordStore(config(tmp_path)) as store:
        report = store.last_recovery
    assert kept.is_file() and not stray.exists()
    assert [Path(q).name for q in report.quarantined] == ["1-9-REJECT.crop-0.png"]


def test_a_frame_that_comes_after_its_record_is_kept_with_its_evidence_once(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        store.add(record(1))  # written without its frame: it had not come within the recorder's wait
        late = store.attach_late(1, 1, frame(1), {}, EVIDENCE)
        assert late is not None and late.image_path is not None and late.evidence["rule"] == EVIDENCE["rule"]
        assert list(crop_files(store.records_dir, late.image_path)) == ["0"]
        assert query(store.db_path)[0].evidence == late.evidence  # stored, not only returned
        assert store.stats().images_kept == 1
        assert store.attach_late(1, 1, frame(2), {}, EVIDENCE) is None  # the record has its frame: kept as is
        assert (store.records_dir / late.image_path).read_bytes() == (
            store.records_dir / query(store.db_path)[0].image_path  # type: ignore[operator]
        ).read_bytes()
        assert store.attach_late(1, 99, frame(3), {}, EVIDENCE) is None  # no such record: nothing written
        assert store.stats().images_kept == 1
        # Evidence that names another verdict than the record's is not kept; its frame is.
        store.add(record(2, Verdict.ACCEPT, near=True))
        other = store.attach_late(1, 2, frame(4), {}, EVIDENCE)
        assert other is not None and other.image_path is not None and other.evidence == {}
