"""Inspection records: every inspection in SQLite (WAL), its image on disk under a quota."""

from __future__ import annotations

from edge.records.config import RecordsConfig
from edge.records.model import InspectionRecord
from edge.records.query import export_csv, export_jsonl, query
from edge.records.recovery import RecoveryReport
from edge.records.store import (
    DuplicateRecordError,
    RecordError,
    RecordStats,
    RecordStore,
    UnknownRecordError,
)

__all__ = [
    "DuplicateRecordError",
    "InspectionRecord",
    "RecordError",
    "RecordStats",
    "RecordStore",
    "RecordsConfig",
    "RecoveryReport",
    "UnknownRecordError",
    "export_csv",
    "export_jsonl",
    "query",
]
