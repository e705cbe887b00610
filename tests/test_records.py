"""Inspection records: the SQLite store, its images under a quota, crash recovery, queries, export and
the `lineside records` command. Real SQLite files under tmp_path; real processes for the crash test."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Detection, Verdict
from edge.records.config import RecordsConfig
from edge.records.images import encode_image
from edge.records.model import InspectionRecord
from edge.records.query import export_csv, export_jsonl, query
from edge.records.schema import DB_FILE, IMAGES_DIR, QUARANTINE_DIR
from edge.records.store import DuplicateRecordError, RecordStore, UnknownRecordError
from lineside.commands.records import run_records
from lineside.commands.timearg import parse_time, parse_window

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_714_560_000.0  # 2024-05-01T10:40:00Z
FRAME_SHAPE = (24, 32, 3)


def frame(seed: int) -> np.ndarray:
    """Noise: PNG cannot compress it, so every frame encodes to (almost) the same size."""
    return np.random.default_rng(seed).integers(0, 256, FRAME_SHAPE, dtype=np.uint8)


FRAME_BYTES = len(encode_image(frame(0), "png", 90))


def record(
    seq: int,
    verdict: Verdict = Verdict.REJECT,
    *,
    boot_id: int = 1,
    near: bool = False,
    at: float | None = None,
    detections: tuple[Detection, ...] = (),
) -> InspectionRecord:
    triggered = T0 + seq if at is None else at
    return InspectionRecord(
        boot_id=boot_id,
        seq=seq,
        part_id=f"P{seq:05d}",
        recipe="bracket-a",
        verdict=verdict,
        reasons=(f"{verdict.value}: test part {seq}",),
        error_code=ErrorCode.TIMEOUT if verdict is Verdict.FAULT else ErrorCode.NONE,
        detections=detections,
        model_name="bracket-defects",
        model_version="1.2.0",
        model_sha256="ab" * 32,
        triggered_at=triggered,
        decided_at=triggered + 0.042,
        latency_ms={"capture": 5.5, "infer": 30.25, "total": 42.0},
        near_threshold=near,
        late=False,
    )


def config(tmp_path: Path, **overrides: object) -> RecordsConfig:
    values: dict[str, object] = {"dir": tmp_path / "records", "quota_mb": 10.0, "image_format": "png"}
    values.update(overrides)
    return RecordsConfig.model_validate(values)


def quota_for_images(count: float) -> float:
    return count * FRAME_BYTES / (1024 * 1024)


def image_keys(store: RecordStore) -> set[tuple[int, int]]:
    return {r.key for r in query(store.db_path) if r.image_path is not None}


def assert_every_image_path_exists(records_dir: Path) -> None:
    for stored in query(records_dir / DB_FILE):
        if stored.image_path is not None:
            assert (records_dir / stored.image_path).is_file(), stored.image_path


# --- store and query ----------------------------------------------------------------------------


def test_added_record_reads_back_equal_with_its_detections(tmp_path: Path) -> None:
    detections = (
        Detection(0, "scratch", 0.9134567, (10.25, 4.0, 18.5, 9.75)),
        Detection(2, "dent", 0.51, (1.0, 2.0, 3.0, 4.0)),
    )
    with RecordStore(config(tmp_path)) as store:
        stored = store.add(record(7, Verdict.REJECT, detections=detections), frame(7))
        assert stored.image_path == f"{IMAGES_DIR}/2024-05-01/1-7-REJECT.png"
        assert (store.records_dir / stored.image_path).is_file()
        [read_back] = query(store.db_path)
        assert read_back == stored
        assert read_back.detections == detections
        assert store.get(1, 7) == stored


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        store.add(record(1), None)
        conn = sqlite3.connect(store.db_path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
        assert (store.records_dir / f"{DB_FILE}-wal").exists()


def test_query_reads_committed_records_while_the_writer_is_open(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        store.add(record(1), None)
        assert [r.seq for r in query(store.db_path)] == [1]
        store.add(record(2), None)
        assert [r.seq for r in query(store.db_path)] == [1, 2]


def test_second_add_for_the_same_sequence_is_refused_and_the_first_record_stands(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path, accept_sample_rate=1.0)) as store:
        first = store.add(record(5, Verdict.REJECT), frame(1))
        assert first.image_path is not None
        image_before = (store.records_dir / first.image_path).read_bytes()
        with pytest.raises(DuplicateRecordError):
            store.add(record(5, Verdict.REJECT, at=T0 + 99), frame(2))
        assert store.exists(1, 5)
        assert not store.exists(2, 5)
        assert query(store.db_path) == [first]
        assert (store.records_dir / first.image_path).read_bytes() == image_before
        assert store.stats().records == 1


def test_same_sequence_under_a_new_boot_is_a_new_record(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        store.add(record(5, boot_id=1), None)
        store.add(record(5, boot_id=2), None)
        assert [r.key for r in query(store.db_path)] == [(1, 5), (2, 5)]


def test_images_are_kept_for_reject_and_fault_not_for_accept_at_sample_rate_zero(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path, accept_sample_rate=0.0)) as store:
        accept = store.add(record(1, Verdict.ACCEPT), frame(1))
        reject = store.add(record(2, Verdict.REJECT), frame(2))
        fault = store.add(record(3, Verdict.FAULT), frame(3))
        assert accept.image_path is None
        assert reject.image_path is not None and (store.records_dir / reject.image_path).is_file()
        assert fault.image_path is not None and (store.records_dir / fault.image_path).is_file()
        stats = store.stats()
        assert (stats.records, stats.images_kept) == (3, 2)
        assert stats.image_bytes == sum(
            (store.records_dir / p).stat().st_size for p in (reject.image_path, fault.image_path)
        )


def test_near_threshold_accept_keeps_its_image_and_disabled_rejects_do_not(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path, save_rejects=False)) as store:
        assert store.add(record(1, Verdict.ACCEPT, near=True), frame(1)).image_path is not None
        assert store.add(record(2, Verdict.REJECT), frame(2)).image_path is None


def test_accept_sample_rate_keeps_an_even_fraction_of_accept_images(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path, accept_sample_rate=0.25)) as store:
        kept = [store.add(record(s, Verdict.ACCEPT), frame(s)).image_path is not None for s in range(12)]
    assert [s for s, k in enumerate(kept) if k] == [3, 7, 11]


def test_unencodable_image_still_stores_the_record_and_counts_the_error(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        stored = store.add(record(1, Verdict.REJECT), np.zeros((4, 4, 2), dtype=np.uint8))
        assert stored.image_path is None
        assert store.exists(1, 1)
        assert store.stats().image_errors == 1


def test_mark_late_annotates_the_stored_record_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        store.add(record(3, Verdict.FAULT), None)
        store.mark_late(1, 3, "result after 812 ms")
        marked = store.mark_late(1, 3, "second result")
        assert marked.late is True
        assert marked.late_note == "result after 812 ms; second result"
        assert marked.verdict is Verdict.FAULT  # a late result never changes the verdict
        assert query(store.db_path) == [marked]
        with pytest.raises(UnknownRecordError):
            store.mark_late(1, 4, "no such part")


@pytest.mark.parametrize(
    ("verdict", "error_code"),
    [(Verdict.ACCEPT, ErrorCode.TIMEOUT), (Verdict.FAULT, ErrorCode.NONE)],
)
def test_record_refuses_an_error_code_that_contradicts_its_verdict(verdict: Verdict, error_code: int) -> None:
    good = record(1)
    with pytest.raises(ValueError, match="error_code"):
        InspectionRecord(**{**good.__dict__, "verdict": verdict, "error_code": error_code})


# --- quota --------------------------------------------------------------------------------------


def test_quota_evicts_oldest_accept_then_near_threshold_then_oldest_reject(tmp_path: Path) -> None:
    cfg = config(tmp_path, quota_mb=quota_for_images(4.5), accept_sample_rate=1.0)
    with RecordStore(cfg) as store:
        store.add(record(1, Verdict.ACCEPT), frame(1))
        store.add(record(2, Verdict.REJECT), frame(2))
        store.add(record(3, Verdict.ACCEPT, near=True), frame(3))
        store.add(record(4, Verdict.ACCEPT), frame(4))
        assert image_keys(store) == {(1, 1), (1, 2), (1, 3), (1, 4)}
        expected_survivors = [
            {(1, 2), (1, 3), (1, 4), (1, 5)},  # oldest plain ACCEPT (1) goes first
            {(1, 2), (1, 3), (1, 5), (1, 6)},  # then the next plain ACCEPT (4)
            {(1, 2), (1, 5), (1, 6), (1, 7)},  # then the near-threshold ACCEPT (3)
            {(1, 5), (1, 6), (1, 7), (1, 8)},  # then the oldest REJECT (2)
        ]
        for seq, survivors in zip(range(5, 9), expected_survivors, strict=True):
            store.add(record(seq, Verdict.REJECT if seq % 2 else Verdict.FAULT), frame(seq))
            assert image_keys(store) == survivors
            assert_every_image_path_exists(store.records_dir)
        evicted = [r.key for r in query(store.db_path) if r.image_evicted]
        assert evicted == [(1, 1), (1, 2), (1, 3), (1, 4)]
        stats = store.stats()
        assert stats.images_evicted == 4 and stats.images_kept == 4
        assert stats.image_bytes <= stats.quota_bytes
        files = [p for p in (store.records_dir / IMAGES_DIR).rglob("*") if p.is_file()]
        assert sum(p.stat().st_size for p in files) == stats.image_bytes


def test_image_bigger_than_the_quota_is_evicted_at_once_and_the_record_says_so(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path, quota_mb=quota_for_images(0.5))) as store:
        stored = store.add(record(1, Verdict.REJECT), frame(1))
        assert stored.image_path is None and stored.image_evicted is True
        assert query(store.db_path) == [stored]
        assert not any(p.is_file() for p in (store.records_dir / IMAGES_DIR).rglob("*"))


def test_a_smaller_quota_is_enforced_when_the_store_opens(tmp_path: Path) -> None:
    with RecordStore(config(tmp_path)) as store:
        for seq in range(4):
            store.add(record(seq), frame(seq))
    with RecordStore(config(tmp_path, quota_mb=quota_for_images(2.5))) as store:
        assert image_keys(store) == {(1, 2), (1, 3)}
        assert store.stats().images_evicted == 2
        assert_every_image_path_exists(store.records_dir)


# --- crash and recovery -------------------------------------------------------------------------


def _add_until_killed(records_dir: str, boot_id: int, progress: multiprocessing.synchronize.Event) -> None:
    """Child process: a stream of adds (and evictions, the quota is small) that the parent kills."""
    cfg = config(Path(records_dir).parent, quota_mb=quota_for_images(6.5), accept_sample_rate=0.5)
    store = RecordStore(cfg)
    verdicts = (Verdict.ACCEPT, Verdict.REJECT, Verdict.ACCEPT, Verdict.FAULT)
    for seq in range(10_000):  # bounded; the parent kills it long before
        store.add(record(seq, verdicts[seq % 4], boot_id=boot_id, near=seq % 5 == 0), frame(seq))
        if seq == 8 + 7 * boot_id:
            progress.set()


def test_killed_writer_leaves_a_readable_db_with_complete_rows_and_existing_images(tmp_path: Path) -> None:
    records_dir = tmp_path / "records"
    ctx = multiprocessing.get_context("fork")
    for boot_id in (1, 2, 3):  # three crashes, each at a different point, on the same folder
        progress = ctx.Event()
        child = ctx.Process(target=_add_until_killed, args=(str(records_dir), boot_id, progress))
        child.start()
        try:
            assert progress.wait(timeout=60), "writer made no progress"
            os.kill(child.pid or 0, signal.SIGKILL)
        finally:
            child.join(timeout=10)
        assert child.exitcode == -signal.SIGKILL

        # Before any recovery: every row decodes completely and every image path exists.
        rows = query(records_dir / DB_FILE)
        assert len([r for r in rows if r.boot_id == boot_id]) > 8 + 7 * boot_id
        assert all(r.reasons and r.model_sha256 and "total" in r.latency_ms for r in rows)
        assert_every_image_path_exists(records_dir)
        conn = sqlite3.connect(records_dir / DB_FILE)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()

        with RecordStore(config(tmp_path, quota_mb=quota_for_images(6.5))) as store:
            assert_every_image_path_exists(records_dir)
            leftovers = [p for p in (records_dir / IMAGES_DIR).rglob("*") if p.is_file()]
            assert not [p for p in leftovers if p.name.endswith(".tmp")]
            assert sum(p.stat().st_size for p in leftovers) == store.stats().image_bytes
            assert store.stats().records == len(rows)


def test_recover_quarantines_orphans_removes_temp_files_and_clears_missing_paths(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with RecordStore(cfg) as store:
        kept = store.add(record(1), frame(1))
        lost = store.add(record(2), frame(2))
    assert kept.image_path is not None and lost.image_path is not None
    records_dir = cfg.dir
    day = records_dir / IMAGES_DIR / "2024-05-01"
    (day / "9-9-REJECT.png").write_bytes(b"an image whose row never committed")
    (day / ".1-3-REJECT.png.k2j3.tmp").write_bytes(b"half an image")
    (records_dir / lost.image_path).unlink()

    with RecordStore(cfg) as store:
        report = store.last_recovery
        assert report.temp_files_removed == 1
        assert report.quarantined == (f"{IMAGES_DIR}/2024-05-01/9-9-REJECT.png",)
        assert report.missing_cleared == (lost.image_path,)
        assert (records_dir / QUARANTINE_DIR / "2024-05-01" / "9-9-REJECT.png").is_file()
        assert sorted(p.name for p in day.iterdir()) == ["1-1-REJECT.png"]
        assert store.get(1, 2).image_path is None
        assert store.get(1, 1).image_path == kept.image_path
        assert store.stats().images_kept == 1
        assert not store.recover().changed  # a second pass finds nothing to do


def test_recover_deletes_the_file_of_an_eviction_interrupted_before_unlink(tmp_path: Path) -> None:
    cfg = config(tmp_path, quota_mb=quota_for_images(1.5))
    with RecordStore(cfg) as store:
        first = store.add(record(1), frame(1))
        assert first.image_path is not None
        saved = (store.records_dir / first.image_path).read_bytes()
        store.add(record(2), frame(2))  # evicts the first image
    # As if the process died after committing the eviction but before the unlink.
    (cfg.dir / first.image_path).write_bytes(saved)
    with RecordStore(cfg) as store:
        assert store.last_recovery.evicted_leftovers_removed == 1
        assert store.last_recovery.quarantined == ()
        assert not (cfg.dir / first.image_path).exists()


# --- query filters and export -------------------------------------------------------------------


def _store_mixed(tmp_path: Path) -> RecordStore:
    store = RecordStore(config(tmp_path))
    verdicts = (Verdict.ACCEPT, Verdict.REJECT, Verdict.FAULT)
    for seq in range(9):
        store.add(record(seq, verdicts[seq % 3], at=T0 + 60 * seq), frame(seq))
    return store


def test_query_filters_by_verdict_time_window_and_limit(tmp_path: Path) -> None:
    with _store_mixed(tmp_path) as store:
        db = store.db_path
        assert [r.seq for r in query(db, verdict="REJECT")] == [1, 4, 7]
        assert [r.seq for r in query(db, since=T0 + 120, until=T0 + 300)] == [2, 3, 4]
        assert [r.seq for r in query(db, limit=3)] == [6, 7, 8]  # the latest three, oldest first
        assert [r.seq for r in query(db, verdict=Verdict.FAULT, limit=2)] == [5, 8]
        assert query(db, limit=0) == []


def test_query_of_a_missing_or_foreign_database_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(LinesideError, match="no records database"):
        query(tmp_path / DB_FILE)
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LinesideError, match=r"junk\.db"):
        query(tmp_path / "junk.db")


def test_jsonl_export_reads_back_into_equal_records(tmp_path: Path) -> None:
    with _store_mixed(tmp_path) as store:
        store.mark_late(1, 4, "late")
        records = query(store.db_path)
    out = io.StringIO()
    assert export_jsonl(records, out) == 9
    lines = out.getvalue().splitlines()
    assert [InspectionRecord.from_json(json.loads(line)) for line in lines] == records


def test_csv_export_has_one_row_per_record_with_iso_times_and_json_lists(tmp_path: Path) -> None:
    detection = Detection(1, "crack", 0.75, (1.0, 2.0, 30.0, 40.0))
    with RecordStore(config(tmp_path)) as store:
        store.add(record(1, Verdict.REJECT, detections=(detection,)), frame(1))
        store.add(record(2, Verdict.ACCEPT), frame(2))
        records = query(store.db_path)
    out = io.StringIO()
    assert export_csv(records, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["verdict"] for r in rows] == ["REJECT", "ACCEPT"]
    assert rows[0]["triggered_at"] == "2024-05-01T10:40:01.000+00:00"
    assert json.loads(rows[0]["detections"])[0]["class"] == "crack"
    assert rows[0]["image_path"].endswith("1-1-REJECT.png") and rows[1]["image_path"] == ""
    assert rows[0]["total_ms"] == "42.0"


# --- the records command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-90s", T0 - 90),
        ("-15m", T0 - 900),
        ("-1h", T0 - 3600),
        ("-2d", T0 - 172_800),
        ("now", T0),
        ("2024-05-01T10:40:00Z", T0),
        ("2024-05-01T12:40:00+02:00", T0),
    ],
)
def test_time_options_accept_iso_and_relative_times(text: str, expected: float) -> None:
    assert parse_time(text, T0, "--since") == pytest.approx(expected)


def test_a_time_window_is_open_where_not_given_and_refused_when_it_ends_before_it_begins() -> None:
    assert parse_window(None, None, T0) == (None, None)
    assert parse_window("-1h", None, T0) == (T0 - 3600, None)
    assert parse_window(None, "now", T0) == (None, T0)
    with pytest.raises(LinesideError, match=r"--since -1h is not before --until -2h"):
        parse_window("-1h", "-2h", T0)


def test_records_alarms_refuses_a_window_that_ends_before_it_begins(tmp_path: Path) -> None:
    from lineside.commands.records_alarms import run_recorded

    err = io.StringIO()
    assert run_recorded(tmp_path, since="-1h", until="-2h", stderr=err, now=T0) == 2
    assert err.getvalue().strip() == "lineside records alarms: --since -1h is not before --until -2h"


def test_records_command_prints_a_table_of_the_filtered_records(tmp_path: Path) -> None:
    with _store_mixed(tmp_path):
        pass
    out, err = io.StringIO(), io.StringIO()
    code = run_records(tmp_path / "records", verdict="FAULT", stdout=out, stderr=err)
    assert (code, err.getvalue()) == (0, "")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("TIME (local)")
    assert [line.split()[2] for line in lines[1:4]] == ["1:2", "1:5", "1:8"]
    assert "FAULT(4)" in lines[1]
    assert lines[-1].startswith("3 record(s)")


def test_records_command_writes_csv_to_a_file_atomically(tmp_path: Path) -> None:
    with _store_mixed(tmp_path):
        pass
    target = tmp_path / "exports" / "rejects.csv"
    err = io.StringIO()
    code = run_records(tmp_path / "records", verdict="REJECT", fmt="csv", output=target, stderr=err)
    assert code == 0
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [int(r["seq"]) for r in rows] == [1, 4, 7]
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert "wrote 3 record(s)" in err.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "yesterday-ish"}, "--since"),
        ({"since": "-1h", "until": "-2h"}, "not before"),
        ({"limit": -1}, "limit"),
    ],
)
def test_records_command_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with RecordStore(config(tmp_path)) as store:
        store.add(record(1), None)
    out, err = io.StringIO(), io.StringIO()
    code = run_records(tmp_path / "records", stdout=out, stderr=err, now=T0, **kwargs)  # type: ignore[arg-type]
    assert code == 2
    assert out.getvalue() == ""
    assert len(err.getvalue().splitlines()) == 1 and message in err.getvalue()


def test_records_command_on_a_missing_database_is_exit_code_2(tmp_path: Path) -> None:
    err = io.StringIO()
    assert run_records(tmp_path / "nowhere", stderr=err) == 2
    assert "no records database" in err.getvalue()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # A real process; the lead switches this to `python -m lineside.cli records ...` once the CLI is wired.
    return subprocess.run(
        [sys.executable, "-m", "lineside.cli", "records", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_records_command_runs_as_a_process_and_exports_jsonl(tmp_path: Path) -> None:
    with _store_mixed(tmp_path):
        pass
    proc = _cli("--dir", str(tmp_path / "records"), "--verdict", "ACCEPT", "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    seqs = [json.loads(line)["seq"] for line in proc.stdout.splitlines()]
    assert seqs == [0, 3, 6]
    bad = _cli("--dir", str(tmp_path / "records"), "--since", "last tuesday")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "--since" in bad.stderr
