"""The calibration file the runtime reads: rules in mm once scaled; another resolution is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge.errors import LinesideError
from edge.station.calibfile import load_calibration
from tests.line import FRAME_H, FRAME_W, lineside, make_station


def _write_calibration(
    path: Path, width: int = FRAME_W, height: int = FRAME_H, mm_per_px: float = 0.5
) -> Path:
    path.write_text(
        json.dumps(
            {
                "schema": 1,
                "camera": {"width": width, "height": height},
                "scale": {"mm_per_px": mm_per_px, "method": "test"},
            }
        )
    )
    return path


def _with_calibration(config: Path, calibration: Path, rules: dict[str, object]) -> None:
    data = yaml.safe_load(config.read_text())
    data["recipes"][0]["calibration"] = str(calibration)
    data["recipes"][0]["rules"] = rules
    config.write_text(yaml.safe_dump(data))


def test_calibrated_rules_judge_and_explain_in_millimetres(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "d")
    calibration = _write_calibration(tmp_path / "cal.json", mm_per_px=0.5)
    # The tiny model's box is 10 model px = 25 frame px = 12.5 mm: a 12 mm minimum rejects, 13 mm passes.
    _with_calibration(config, calibration, {"default": {"min_confidence": 0.5, "min_size_mm": 12.0}})
    proc = lineside("inspect", "--json", "--config", str(config), str(tmp_path / "parts"))
    outcome = json.loads(proc.stdout)
    assert outcome["verdict"] == "REJECT"
    assert " mm, " in outcome["reasons"][0] and "12.5x12.5 mm" in outcome["reasons"][0]
    _with_calibration(config, calibration, {"default": {"min_confidence": 0.5, "min_size_mm": 13.0}})
    proc = lineside("inspect", "--json", "--config", str(config), str(tmp_path / "parts"))
    assert json.loads(proc.stdout)["verdict"] == "ACCEPT"


def test_calibration_made_for_another_resolution_is_a_fault_never_a_verdict(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "d")
    calibration = _write_calibration(tmp_path / "cal.json", width=1280, height=960)
    _with_calibration(config, calibration, {"default": {"min_confidence": 0.5, "min_size_mm": 1.0}})
    proc = lineside("inspect", "--json", "--config", str(config), str(tmp_path / "parts"))
    outcome = json.loads(proc.stdout)
    assert outcome["verdict"] == "FAULT"
    assert "made for 1280x960 frames, this frame is 160x120" in outcome["reasons"][0]


def test_run_check_refuses_a_calibration_for_another_size_than_the_source_delivers(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "d")
    calibration = _write_calibration(tmp_path / "cal.json", width=1280, height=960)
    _with_calibration(config, calibration, {"default": {"min_confidence": 0.5}})
    data = yaml.safe_load(config.read_text())
    data["source"].update({"expected_width": FRAME_W, "expected_height": FRAME_H})
    config.write_text(yaml.safe_dump(data))
    proc = lineside("run", "--check", str(config))
    assert proc.returncode != 0
    message = proc.stderr.strip()
    assert "\n" not in message, message
    assert "recipes[1].calibration" in message and "1280x960" in message and f"{FRAME_W}x{FRAME_H}" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable calibration file"),
        ('{"schema": 1, "camera": {"width": 0, "height": 10}}', "field 'camera.width'"),
        ('{"schema": 1, "camera": {"width": 10, "height": 10}, "extra": 1}', "field 'extra'"),
        (
            '{"schema": 1, "camera": {"width": 10, "height": 10}, "scale": {"mm_per_px": -1}}',
            "scale.mm_per_px",
        ),
    ],
)
def test_bad_calibration_files_are_refused_in_one_line_naming_the_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(LinesideError) as caught:
        load_calibration(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_update_keeps_other_sections_and_the_previous_file_and_refuses_another_resolution(
    tmp_path: Path,
) -> None:
    from edge.station.calibfile import CameraFrame, ScaleSection, update_calibration

    path = tmp_path / "station.json"
    camera = CameraFrame(width=640, height=480)
    update_calibration(path, camera, scale=ScaleSection(mm_per_px=0.2, method="first"))
    update_calibration(path, camera, scale=ScaleSection(mm_per_px=0.25, method="second"))
    assert load_calibration(path).scale.mm_per_px == 0.25  # type: ignore[union-attr]
    assert load_calibration(tmp_path / "station.json.prev").scale.mm_per_px == 0.2  # type: ignore[union-attr]
    with pytest.raises(LinesideError, match="made for 640x480 frames"):
        update_calibration(path, CameraFrame(width=1280, height=960), scale=None)
    assert load_calibration(path).scale.mm_per_px == 0.25  # type: ignore[union-attr]


def test_atomic_write_keeps_the_replaced_files_mode_and_new_files_are_0644(tmp_path: Path) -> None:
    import stat

    from edge.atomic import atomic_write_text

    fresh = atomic_write_text(tmp_path / "new.json", "{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    fresh.chmod(0o640)
    atomic_write_text(fresh, '{"a": 1}')
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640 and fresh.read_text() == '{"a": 1}'
