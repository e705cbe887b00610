"""The line with a station calibration: the start-up check blocks READY on a bad view, and the
calibration's ROI and thresholds judge the parts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.records.query import query
from tests.line import FRAME_H, FRAME_W, lineside, make_station, running_line

pytestmark = pytest.mark.slow


def _textured(defective: bool, blur: bool = False) -> np.ndarray:
    """A part-like view with texture (features for the pose check); bright = defective for the tiny model."""
    rng = np.random.default_rng(7)
    base = 200 if defective else 50
    image = (
        np.clip(base + rng.normal(0, 25, (FRAME_H, FRAME_W, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)
    )
    for i in range(6):
        cv2.circle(image, (20 + 24 * i, 40 + (i % 2) * 30), 9, (255, 255, 255) if i % 2 else (0, 0, 0), 2)
    return cv2.GaussianBlur(image, (0, 0), 4) if blur else image


def _station(tmp_path: Path, first_blurred: bool, mode: str) -> Path:
    config, _ = make_station(tmp_path, "gd", extra={"station_check": {"mode": mode}})
    for i, defective in enumerate((False, True)):
        cv2.imwrite(
            str(tmp_path / "parts" / f"part_{i:03d}.png"), _textured(defective, blur=first_blurred and i == 0)
        )
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), _textured(False))
    calibration = tmp_path / "station.json"
    made = lineside(
        "calibrate", "check", "--calibration", str(calibration), "--set-reference", "--image", str(reference)
    )
    assert made.returncode == 0, made.stderr
    data = yaml.safe_load(config.read_text())
    data["recipes"][0]["calibration"] = str(calibration)
    data["supervisor"]["not_ready_warn_s"] = 0.5
    config.write_text(yaml.safe_dump(data))
    return config


def test_a_blurred_view_at_start_keeps_the_line_out_of_ready_and_says_why(tmp_path: Path) -> None:
    config = _station(tmp_path, first_blurred=True, mode="block")
    with running_line(config) as line:
        said = lambda: any("not READY" in t and "station check FAIL" in t for t in line.stderr)  # noqa: E731
        line.wait_for(said, 30, "a not-READY warning naming the station check")
    assert line.part_lines() == []
    assert any("focus" in t and "FAIL" in t for t in line.stderr)


def test_with_warn_the_line_runs_after_logging_the_failed_check(tmp_path: Path) -> None:
    config = _station(tmp_path, first_blurred=True, mode="warn")
    proc = lineside("run", str(config), "--max-parts", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(query(tmp_path / "records" / "records.db")) == 4


def test_a_good_view_passes_the_check_and_the_line_runs(tmp_path: Path) -> None:
    config = _station(tmp_path, first_blurred=False, mode="block")
    proc = lineside("run", str(config), "--max-parts", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(query(tmp_path / "records" / "records.db")) == 4


def test_calibration_roi_robot_plane_and_thresholds_drive_the_verdict(tmp_path: Path) -> None:
    """A station set up only by `lineside calibrate` commands; the recipe names just the file."""
    config, _ = make_station(tmp_path, "gd")
    parts = tmp_path / "parts"
    cal = str(tmp_path / "station.json")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    for i in range(3):
        cv2.imwrite(str(good / f"g{i}.png"), np.full((FRAME_H, FRAME_W, 3), 40 + 5 * i, np.uint8))
        cv2.imwrite(str(bad / f"b{i}.png"), np.full((FRAME_H, FRAME_W, 3), 210 + 5 * i, np.uint8))
    (tmp_path / "pairs.csv").write_text("0,0,100,200\n150,0,250,200\n150,110,250,310\n0,110,100,310\n")
    model = str(tmp_path / "model")
    steps = [
        ["roi", "--image", str(parts / "part_000.png"), "--rect", "20,20,120,80", "--out", cal],
        ["robot", "--pairs", str(tmp_path / "pairs.csv"), "--out", cal],
        ["thresholds", "--good", str(good), "--bad", str(bad), "--out", cal, "--model", model, "--yes"],
    ]
    for step in steps:
        done = lineside("calibrate", *step)
        assert done.returncode == 0, done.stderr
    data = yaml.safe_load(config.read_text())
    data["recipes"][0]["calibration"] = cal
    config.write_text(yaml.safe_dump(data))
    judged = lineside("inspect", "--json", "--config", str(config), str(parts))
    outcomes = [yaml.safe_load(line) for line in judged.stdout.splitlines()]
    assert [o["verdict"] for o in outcomes] == ["ACCEPT", "REJECT"]
    reasons = outcomes[1]["reasons"]
    # Thresholds from the golden samples sit between the good and bad scores, not at the card's 0.5.
    assert reasons[0].startswith("REJECT: scratch") and ">= 0.5" not in reasons[0]
    # The box centre (80, 60) px maps through the robot plane to (180, 260) mm.
    assert reasons[-1] == "robot position of the scratch: (180.0, 260.0) mm"
    # The same bright part with the ROI moved off the defect is accepted: the calibration's ROI is used.
    done = lineside(
        "calibrate", "roi", "--image", str(parts / "part_000.png"), "--rect", "0,0,30,30", "--out", cal
    )
    assert done.returncode == 0, done.stderr
    again = yaml.safe_load(
        lineside("inspect", "--json", "--config", str(config), str(parts / "part_001.png")).stdout
    )
    assert again["verdict"] == "ACCEPT" and "outside ROI" in again["reasons"][0]
