"""Shared by every fault test: the `fault_report` collector and the summary table printed at the end.

Fixture API (stable; tests/faults/test_hot_swap.py uses it too):

    def test_something(fault_report: FaultReport) -> None:
        ...
        fault_report.add(FaultRow(case="sigkill-inference", injected="SIGKILL inference x2", parts=40,
                                  wrong_accepts=0, lost_records=0, recovery_s=1.8,
                                  visible=("status", "error_code", "records", "logs"), note=""))

`FaultRow` is `lineside.soak.report.FaultRow` (also re-exported here). Add the row BEFORE asserting, so a
failing case still shows its figures. At the end of the session the rows are printed as a table
(`render_table`) and written as JSON to `.pytest_cache/v/lineside/faults` (pytest's cache) and, when
the environment variable LINESIDE_FAULT_REPORT names a file, to that file too (docs/reliability.md is
updated from it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lineside.soak.report import FaultRow, render_table

__all__ = ["FaultReport", "FaultRow"]

_CACHE_KEY = "lineside/faults"
_STASH: pytest.StashKey[FaultReport] = pytest.StashKey()


class FaultReport:
    """The rows of this test session, in the order the cases ran."""

    def __init__(self) -> None:
        self.rows: list[FaultRow] = []

    def add(self, row: FaultRow) -> FaultRow:
        self.rows.append(row)
        return row


def _report(config: pytest.Config) -> FaultReport:
    if _STASH not in config.stash:
        config.stash[_STASH] = FaultReport()
    return config.stash[_STASH]


@pytest.fixture(scope="session")
def fault_report(pytestconfig: pytest.Config) -> FaultReport:
    return _report(pytestconfig)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = _report(config).rows
    if not rows:
        return
    terminalreporter.section("fault suite summary")
    terminalreporter.write_line(render_table(rows))
    data = [row.to_json() for row in rows]
    if getattr(config, "cache", None) is not None:
        config.cache.set(_CACHE_KEY, data)
    target = os.environ.get("LINESIDE_FAULT_REPORT")
    if target:
        Path(target).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"fault rows written to {target}")
