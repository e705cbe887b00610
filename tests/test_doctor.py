"""`lineside doctor` as a process on real station folders (tests/line.py): PASS, WARN and FAIL per check."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from edge.modelstore.card import read_card
from edge.station.calibfile import CalibrationFile, CameraFrame, ScaleSection, save_calibration
from edge.station.calibsections import ThresholdsSection
from tests.line import FRAME_H, FRAME_W, lineside, make_station, running_line

ALL_CHECKS = {
    "config",
    "model[recipe 1]",
    "camera",
    "calibration[recipe 1]",
    "modbus",
    "disk",
    "clock",
    "ntp",
    "runtime",
}
# Disk thresholds far below any test machine's free space, so only the checks under test can fail.
SMALL_DISK = ("--disk-warn-gb", "0.01", "--disk-fail-gb", "0.001")


def calibrated_station(
    root: Path,
    *,
    width: int = FRAME_W,
    height: int = FRAME_H,
    model_sha256: str | None = None,
    age_days: float = 3,
) -> tuple[Path, int]:
    """A station (tests/line.py) whose recipe uses a calibration file with thresholds for its model."""
    config_path, port = make_station(root)
    card = read_card(root / "model")
    thresholds = ThresholdsSection(
        per_class={"scratch": 0.5, "pit": 0.5},
        model=f"{card.name} {card.version}",
        model_sha256=model_sha256 or card.sha256,
        target_escape=0.01,
        escape_rate=0.0,
        overkill_rate=0.0,
        good_samples=10,
        bad_samples=10,
    )
    created = (datetime.now(timezone.utc) - timedelta(days=age_days)).isoformat()
    calibration = CalibrationFile(
        camera=CameraFrame(width=width, height=height),
        scale=ScaleSection(mm_per_px=0.1),
        thresholds=thresholds,
        created=created,
    )
    save_calibration(root / "station.calib.json", calibration)
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["recipes"][0]["calibration"] = "station.calib.json"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return config_path, port


def doctor(config: Path, *extra: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run `lineside doctor --json`; (exit code, check name -> {status, message})."""
    done = lineside("doctor", str(config), "--json", *SMALL_DISK, *extra, timeout=120)
    assert done.stdout, f"no output; stderr:\n{done.stderr}"
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    return done.returncode, checks


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


def test_a_good_station_passes_every_check(tmp_path: Path) -> None:
    config, _ = calibrated_station(tmp_path)
    code, checks = doctor(config)
    assert set(checks) == ALL_CHECKS
    # NTP sync is the host's business (a container is rarely synchronised itself): PASS or WARN, never FAIL.
    assert checks["ntp"]["status"] in ("PASS", "WARN")
    not_passed = {n: c["message"] for n, c in checks.items() if c["status"] != "PASS" and n != "ntp"}
    assert not_passed == {}
    assert code == 0
    assert f"a {FRAME_W}x{FRAME_H} frame" in checks["camera"]["message"]
    assert "sha256 matches its card" in checks["model[recipe 1]"]["message"]
    assert "made 3 days ago" in checks["calibration[recipe 1]"]["message"]
    assert "is free (bindable)" in checks["modbus"]["message"]
    assert "onnxruntime" in checks["runtime"]["message"]


def test_text_output_is_one_status_line_per_check_and_a_summary(tmp_path: Path) -> None:
    config, _ = calibrated_station(tmp_path)
    done = lineside("doctor", str(config), *SMALL_DISK)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(ALL_CHECKS) + 1
    assert all(line.split()[0] in ("PASS", "WARN", "FAIL") for line in lines[:-1])
    assert lines[-1].startswith("doctor: ") and "0 FAIL" in lines[-1]
    assert done.returncode == 0


def test_broken_station_fails_each_broken_check_by_name(tmp_path: Path) -> None:
    config, port = calibrated_station(tmp_path, model_sha256="0" * 64)  # thresholds of another model
    onnx = tmp_path / "model" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum must catch it
    onnx.write_bytes(bytes(data))
    for image in (tmp_path / "parts").iterdir():
        image.unlink()
    (tmp_path / "parts").rmdir()
    with socket.socket() as squatter:  # another program on the Modbus port
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        code, checks = doctor(config)
    assert code == 1
    assert statuses(checks) | {"ntp": "-"} == {
        "config": "PASS",
        "model[recipe 1]": "FAIL",
        "camera": "FAIL",
        "calibration[recipe 1]": "FAIL",
        "modbus": "FAIL",
        "disk": "PASS",
        "clock": "PASS",
        "ntp": "-",
        "runtime": "PASS",
    }
    assert "does not match card" in checks["model[recipe 1]"]["message"]
    assert "image folder does not exist" in checks["camera"]["message"]
    assert "thresholds were chosen for model" in checks["calibration[recipe 1]"]["message"]
    assert f"in use by another program: pid {os.getpid()}" in checks["modbus"]["message"]


def test_a_calibration_for_another_resolution_fails(tmp_path: Path) -> None:
    config, _ = calibrated_station(tmp_path, width=FRAME_W * 2, height=FRAME_H * 2)
    code, checks = doctor(config)
    assert code == 1
    message = checks["calibration[recipe 1]"]["message"]
    assert checks["calibration[recipe 1]"]["status"] == "FAIL"
    assert f"made for {FRAME_W * 2}x{FRAME_H * 2} frames, this frame is {FRAME_W}x{FRAME_H}" in message


def test_an_old_calibration_warns_and_still_exits_0(tmp_path: Path) -> None:
    config, _ = calibrated_station(tmp_path, age_days=400)
    code, checks = doctor(config, "--calibration-max-age-days", "365")
    assert checks["calibration[recipe 1]"]["status"] == "WARN"
    assert "older than 365 days" in checks["calibration[recipe 1]"]["message"]
    assert code == 0


def test_a_port_served_by_a_running_lineside_is_said_so_not_failed(tmp_path: Path) -> None:
    config, port = make_station(tmp_path)
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 1, timeout=60, what="the line's first part")
        code, checks = doctor(config)
    assert checks["modbus"]["status"] == "PASS"
    assert f"127.0.0.1:{port} is served by a running lineside" in checks["modbus"]["message"]
    assert "lineside-robotl" in checks["modbus"]["message"]  # the robot link worker holds the port
    assert checks["clock"]["status"] == "PASS"
    assert code == 0


def test_an_invalid_config_is_one_fail_line_naming_the_field(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["source"]["exposure_us"] = 1000  # a genicam field on a folder source
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, checks = doctor(config)
    assert code == 1
    assert set(checks) == {"config", "runtime"}
    assert checks["config"]["status"] == "FAIL"
    assert "source" in checks["config"]["message"] and "exposure_us" in checks["config"]["message"]
