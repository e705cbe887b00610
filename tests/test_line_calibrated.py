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
