"""The wall clock stepped one hour back and forward again under a running line (Debian libfaketime in the
appliance's processes only; monotonic time and the robot-sim stay real): no wrong accept, no lost record,
no timeout, READY throughout, and every record still listed. One row in the fault table."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.atomic import atomic_write_text
from edge.records.query import query
from edge.robotlink.registers import VerdictCode
from lineside.soak.faults import Fault, Target, Undo
from tests.debian import require_debian
from tests.faults.campaign import COMMAND, campaign_station, rows_of, run_campaign
from tests.faults.conftest import FaultReport

pytestmark = pytest.mark.slow

STEP_S = 3600  # one hour back: far beyond any budget, heartbeat or staleness window
_SHM = Path("/dev/shm")


def libfaketime() -> Path:
    """The preload library of the Debian package, wherever its multiarch folder is."""
    require_debian("faketime", "libfaketime", programs=("faketime",))
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")) + sorted(
        Path("/usr/lib").glob("faketime/libfaketime.so.1")
    )
    if not found:
        pytest.skip("SKIPPED: libfaketime installed, but no libfaketime.so.1 under /usr/lib")
    return found[0]


def _faketime_shm() -> set[Path]:
    return set(_SHM.glob("faketime_shm_*")) | set(_SHM.glob("sem.faketime_sem_*"))


@pytest.fixture
def shm_tidy() -> Iterator[None]:
    """libfaketime leaves its per-process shared memory behind when a process is killed; a later
    process with that pid would fail on it. Remove only what this test's processes left."""
    before = _faketime_shm()
    yield
    for path in _faketime_shm() - before:
        pid = path.name.rsplit("_", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)


def clock_step(offset_file: Path) -> Fault:
    """Step the faked wall clock STEP_S back while held, then forward to real time again (the undo)."""

    def inject(_: Target) -> tuple[str, Undo | None]:
        atomic_write_text(offset_file, f"-{STEP_S}\n")  # a rename: libfaketime never reads half a file
        return f"wall clock -{STEP_S} s, then +{STEP_S} s", undo

    def undo() -> None:
        atomic_write_text(offset_file, "+0\n")

    return Fault("clock-stepped-back", inject, hold_s=4.0, expect_fault=False)


def faked_command(library: Path, offset_file: Path) -> list[str]:
    """`lineside run` with the wall clock faked (its spawned workers inherit the environment)."""
    preload = " ".join(p for p in (str(library), os.environ.get("LD_PRELOAD", "")) if p)
    env = {
        "LD_PRELOAD": preload,
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",  # the offset file is read on every call: the step lands at once
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # a real clock step leaves CLOCK_MONOTONIC alone too
    }
    return ["env", *(f"{k}={v}" for k, v in env.items()), *COMMAND]


def listed_records(records_dir: Path) -> list[dict[str, object]]:
    """What an operator's `lineside records` lists (real clock)."""
    out = subprocess.run(
        [sys.executable, "-m", "lineside.cli", "records", "--dir", str(records_dir), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_clock_stepped_back_an_hour_loses_nothing_times_out_nothing_and_stays_ready(
    tmp_path: Path, fault_report: FaultReport, shm_tidy: None
) -> None:
    library = libfaketime()
    offset_file = tmp_path / "faketime.rc"
    atomic_write_text(offset_file, "+0\n")
    fault = clock_step(offset_file)
    station = campaign_station(tmp_path, [fault])
    result, figures = run_campaign(station, [fault], seed=7, command=faked_command(library, offset_file))
    records = query(station.records_dir / "records.db")
    assert len(result.injections) == 1, f"not injected: {result.skipped}"
    step = result.injections[0]
    assert step.undone_at is not None
    back = [r for r in records if r.decided_at < step.wall - STEP_S / 2]
    [row] = rows_of(result, figures)
    note = "; ".join(
        n
        for n in (
            f"{len(back)} records stamped 1 h back; recovery = the 4 s hold, READY never dropped",
            row.note,
        )
        if n
    )
    fault_report.add(dataclasses.replace(row, note=note))

    # libfaketime took effect: records decided during the hold carry wall stamps an hour early.
    assert back, "no record stamped an hour back: libfaketime did not reach the appliance"
    assert all(step.wall - STEP_S - 60 < r.decided_at for r in back)
    assert any(r.decided_at >= step.wall - 60 for r in records if r.seq < min(b.seq for b in back))
    assert any(r.decided_at >= step.wall - 60 for r in records if r.seq > max(b.seq for b in back))
    assert figures.wrong_accepts == [], figures.wrong_accepts[:5]
    assert figures.lost_records == [], figures.lost_records[:5]
    # No timeout from the step: every part got a complete verdict within its budget; READY throughout.
    late = [
        p.outcome for p in result.parts if p.outcome.verdict not in (VerdictCode.ACCEPT, VerdictCode.REJECT)
    ]
    assert late == [], late[:5]
    slow = [p.outcome.latency_ms for p in result.parts if (p.outcome.latency_ms or 0.0) > station.budget_ms]
    assert slow == [], slow[:5]
    assert result.restarts == [] and len({p.outcome.boot_id for p in result.parts}) == 1
    # Records written across the step are all still listed (their wall stamps go back, then forward).
    listed = listed_records(station.records_dir)
    assert len(listed) == len(records) == figures.parts
    assert {(r["boot_id"], r["seq"]) for r in listed} == {(r.boot_id, r.seq) for r in records}
