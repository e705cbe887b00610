"""Durability settings and what a crash or a read-only disk leaves: the records database is WAL with
synchronous FULL by default, and a writer refuses (one line) a database it cannot write instead of
failing record by record. (Killed writers and recovery: tests/test_records.py; the whole line under
SIGKILL and power cuts: test_campaign.py.)"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from edge.errors import LinesideError
from edge.records.config import RecordsConfig
from edge.records.store import RecordStore
from tests.faults.campaign import tmpfs


def test_records_are_wal_with_synchronous_full_by_default(tmp_path: Path) -> None:
    with RecordStore(RecordsConfig(dir=tmp_path / "records")) as store:
        assert store.db_path.exists()
    conn = sqlite3.connect(tmp_path / "records" / "records.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    # synchronous is per connection: the writer's own setting, as configured.
    assert RecordsConfig(dir=tmp_path).synchronous == "FULL"


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only mount needs root (as root, chmod is ignored)")
def test_a_records_database_on_a_read_only_filesystem_is_refused_at_open(tmp_path: Path) -> None:
    import subprocess

    with tmpfs(tmp_path / "records", "2m") as folder:
        RecordStore(RecordsConfig(dir=folder)).close()
        before = sorted(p.name for p in folder.iterdir())
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, timeout=10)
        try:
            with pytest.raises(LinesideError) as refused:
                RecordStore(RecordsConfig(dir=folder))
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True, timeout=10)
        assert "not writable" in str(refused.value) and "\n" not in str(refused.value)
        assert sorted(p.name for p in folder.iterdir()) == before
        RecordStore(RecordsConfig(dir=folder)).close()  # writable again: opens as before
