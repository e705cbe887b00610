"""Operator marks (`lineside records mark`): stored atomically beside the records, never changing them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import LinesideError
from edge.judge.inspection import Verdict
from edge.records.config import RecordsConfig
from edge.records.marks import add_mark, read_marks, resolve_key
from edge.records.query import query
from edge.records.schema import DB_FILE
from edge.records.store import RecordStore
from tests.test_dataset_import import _record


def _store(records_dir: Path) -> RecordStore:
    return RecordStore(RecordsConfig(dir=records_dir))


def test_mark_is_stored_while_the_writer_is_open_and_records_are_unchanged(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.add(_record(1, Verdict.ACCEPT, False, ()), np.zeros((8, 8, 3), np.uint8))
        before = query(store.db_path)
        mark = add_mark(store.db_path, 5, 1, "escape", "burr", now=123.0)
        store.add(_record(2, Verdict.REJECT, False, ()))  # the writer goes on after the mark
        assert query(store.db_path)[:1] == before
    assert read_marks(tmp_path / DB_FILE) == {(5, 1): [mark]}
    with _store(tmp_path) as store:  # reopening (and recovery) is untouched by the extra table
        assert store.stats().records == 2


def test_marking_an_unknown_record_or_with_an_unknown_kind_is_refused_and_stores_nothing(
    tmp_path: Path,
) -> None:
    with _store(tmp_path) as store:
        store.add(_record(1, Verdict.ACCEPT, False, ()))
    with pytest.raises(LinesideError, match="no record 5:9 to mark"):
        add_mark(tmp_path / DB_FILE, 5, 9, "escape")
    with pytest.raises(LinesideError, match="expected one of escape, overkill, relabel"):
        add_mark(tmp_path / DB_FILE, 5, 1, "maybe")
    assert read_marks(tmp_path / DB_FILE) == {}


def test_inspections_table_schema_is_not_changed_by_marks(tmp_path: Path) -> None:
    def schema() -> str:
        with sqlite3.connect(tmp_path / DB_FILE) as conn:
            return str(conn.execute("SELECT sql FROM sqlite_master WHERE name = 'inspections'").fetchone()[0])

    with _store(tmp_path) as store:
        store.add(_record(1, Verdict.ACCEPT, False, ()))
    before = schema()
    add_mark(tmp_path / DB_FILE, 5, 1, "relabel")
    assert schema() == before


def test_bare_seq_resolves_when_unique_and_asks_for_boot_when_two_boots_share_it(tmp_path: Path) -> None:
    from dataclasses import replace

    with _store(tmp_path) as store:
        store.add(_record(1, Verdict.ACCEPT, False, ()))
        store.add(_record(2, Verdict.ACCEPT, False, ()))
        store.add(replace(_record(2, Verdict.ACCEPT, False, ()), boot_id=6))
    db = tmp_path / DB_FILE
    assert resolve_key(db, "1") == (5, 1)
    assert resolve_key(db, "6:2") == (6, 2)
    with pytest.raises(LinesideError, match="give one of 5:2, 6:2"):
        resolve_key(db, "2")
    with pytest.raises(LinesideError, match="expected SEQ or BOOT:SEQ"):
        resolve_key(db, "two")


def test_records_mark_cli_marks_and_a_missing_record_is_exit_2(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.add(_record(3, Verdict.REJECT, False, ()))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "lineside.cli", "records", "mark", *args, "--dir", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    result = cli("3", "--as", "overkill", "--note", "glare")
    assert result.returncode == 0, result.stderr
    assert "marked 5:3 as overkill" in result.stdout
    assert [(m.kind, m.note) for m in read_marks(tmp_path / DB_FILE)[(5, 3)]] == [("overkill", "glare")]
    missing = cli("44", "--as", "escape")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no record 44" in missing.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "lineside.cli", "records", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listing.returncode == 0 and "5:3" in listing.stdout  # plain `records` still lists
