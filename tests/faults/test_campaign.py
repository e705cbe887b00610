"""The fault suite: `lineside run` with the robot program in the loop, each fault injected at a seeded
moment; no wrong accept, no lost record, READY again, and the fault visible. One row per fault in the
summary table (tests/faults/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lineside.soak.faults import catalogue
from tests.faults.campaign import campaign_station, rows_of, run_campaign, tmpfs
from tests.faults.conftest import FaultReport

pytestmark = pytest.mark.slow

GROUPS = {
    "workers": ["kill-capture", "kill-inference", "kill-robotlink"],
    "recorder": ["kill-recorder"],
    "supervisor": ["hang-inference", "kill-supervisor", "power-cut"],
    "source": ["camera-lost", "truncated-frame", "wrong-size-frame"],
    "robot": ["link-drop", "link-flap", "link-slow", "robot-heartbeat-stop", "modbus-garbage"],
    "records": ["records-quota", "records-full", "records-read-only"],
}
# Open bugs, kept visible in the table: a listed case that loses records is xfailed with the reason (a
# wrong accept still fails it); once the bug is fixed its entry goes.
# (kill-recorder, power-cut, kill-supervisor and records-read-only lost finals until the robot link
# journalled them: edge/records/journal.py.)
KNOWN_LOSS: dict[str, str] = {}


@pytest.mark.parametrize("group", list(GROUPS))
def test_fault_group_never_accepts_wrongly_nor_loses_a_record(
    group: str, tmp_path: Path, fault_report: FaultReport
) -> None:
    faults = [catalogue()[name] for name in GROUPS[group]]
    if any(f.needs_mount for f in faults):
        if os.geteuid() != 0:
            pytest.skip("records-full/read-only need a tmpfs of their own: run as root")
        with tmpfs(tmp_path / "records", "3m") as records:
            station = campaign_station(tmp_path, faults, records_dir=records)
            result, figures = run_campaign(station, faults, seed=len(group))
    else:
        station = campaign_station(tmp_path, faults)
        result, figures = run_campaign(station, faults, seed=len(group))
    rows = rows_of(result, figures)
    for row in rows:
        fault_report.add(row)
    assert figures.wrong_accepts == [], figures.wrong_accepts[:5]
    by_case = {row.case: row for row in rows}
    assert set(by_case) == set(GROUPS[group]), f"not injected: {result.skipped}"
    for fault in faults:
        row = by_case[fault.name]
        assert row.recovery_s is not None, f"{fault.name}: never a complete verdict again"
        assert "logs" in row.visible, f"{fault.name}: no WARNING/ERROR line in the log"
        if fault.expect_fault:
            assert {"error_code", "link"} & set(row.visible), f"{fault.name}: the robot saw nothing"
    lost = {row.case: row.lost_records for row in rows if row.lost_records}
    known = {case: n for case, n in lost.items() if case in KNOWN_LOSS}
    assert {c: n for c, n in lost.items() if c not in KNOWN_LOSS} == {}, figures.lost_records[:5]
    if known:
        pytest.xfail(f"open bug: {'; '.join(KNOWN_LOSS[c] for c in known)}: lost {known}")
