"""A short fault campaign on the test station (tiny brightness model: bright parts are defective)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edge.robotlink.robotrules import RobotSettings
from lineside.soak.accounting import Figures, account, fault_rows
from lineside.soak.campaign import CampaignResult, FaultCampaign, Schedule, copy_parts
from lineside.soak.faults import Fault
from lineside.soak.report import FaultRow
from lineside.soak.station import Station, write_station
from tests.line import FRAME_H, FRAME_W, write_part
from tests.models import ModelBox, make_yolo_model

COMMAND = [sys.executable, "-m", "lineside.cli", "--log-level", "INFO", "run"]
PATTERN = "gdgdggdd"


def make_parts(folder: Path) -> dict[str, bool]:
    folder.mkdir(parents=True)
    truth = {}
    for i, kind in enumerate(PATTERN):
        path = folder / f"part_{i:03d}.png"
        write_part(path, kind == "d")
        truth[path.name] = kind == "d"
    return truth


def make_model(folder: Path) -> Path:
    return make_yolo_model(
        folder,
        ["scratch", "pit"],
        [ModelBox(32, 32, 10, 10, 0, 1.0)],
        imgsz=(64, 64),
        gain="input_mean",
        thresholds={"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.5, "pit": 0.5}},
    )


def campaign_station(root: Path, faults: list[Fault], records_dir: Path | None = None) -> Station:
    truth = make_parts(root / "source-parts")
    extra: dict[str, Any] = {"source": {"expected_width": FRAME_W, "expected_height": FRAME_H}}
    for fault in faults:
        for section, values in fault.config.items():
            extra[section] = {**extra.get(section, {}), **values}
    return write_station(
        root / "station",
        model_dir=make_model(root / "model"),
        parts_dir=copy_parts(root / "source-parts", root / "station"),
        truth=truth,
        records_dir=records_dir,
        extra=extra,
    )


def run_campaign(
    station: Station, faults: list[Fault], seed: int, command: list[str] | None = None
) -> tuple[CampaignResult, Figures]:
    """`command` replaces COMMAND, e.g. prefixed with `env VAR=...` for the appliance alone."""
    robot = RobotSettings(
        port=station.modbus_port,
        deadline_ms=station.budget_ms + 400.0,
        stop_after=0,
        ready_timeout_s=90.0,
        takt_ms=40.0,  # 25 parts/s: what the recorder sustains on a busy 2-core machine with fsync
    )
    schedule = Schedule(faults, warmup_s=0.5, gap_s=(0.3, 0.8), settle_s=1.0, tail_s=2.0)
    result = FaultCampaign(command or COMMAND, station, schedule, seed=seed, robot=robot).run(0.0)
    return result, account(result)


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of its own at `folder` (root only): real ENOSPC and a real read-only remount."""
    folder.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the records (needs root): {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10, check=False)


def rows_of(result: CampaignResult, figures: Figures) -> list[FaultRow]:
    return fault_rows(result, figures)
