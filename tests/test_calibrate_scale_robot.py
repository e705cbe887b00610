"""`lineside calibrate scale | robot`: mm scale, tilted-plane homography and robot plane are recovered.

Targets are rendered through known cameras (tests/test_calibrate_intrinsics.py's ray caster); the
robot pairs come from a known homography with a little measurement noise.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.boards import parse_target
from calibration.intrinsics import undistorted_matrix
from calibration.robot import fit_robot_plane, read_pairs
from calibration.scale import measure_scale
from edge.errors import LinesideError
from edge.station.calibfile import CameraFrame, IntrinsicsSection, load_calibration, update_calibration
from lineside.cli import main
from tests.line import lineside
from tests.test_calibrate_intrinsics import CAMERA, DISTORTION, SIZE, Texture, chessboard_texture, render

FLAT_CAMERA = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
NO_DISTORTION = np.zeros(5)
BOARD = "chessboard:9x6:10mm"
BOARD_CENTRE_MM = (40.0, 25.0)


def view(
    texture: Texture,
    tilt: tuple[float, float, float],
    centre_px: tuple[float, float],
    distance_mm: float,
    centre_mm: tuple[float, float],
    *,
    camera: np.ndarray = FLAT_CAMERA,
    distortion: np.ndarray = NO_DISTORTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, rotation, tvec): the target's `centre_mm` at `distance_mm` on the ray through `centre_px`."""
    rotation = np.eye(3)
    for axis, degrees in enumerate(tilt):
        rvec = np.zeros(3)
        rvec[axis] = math.radians(degrees)
        rotation = rotation @ cv2.Rodrigues(rvec)[0]
    ray = np.linalg.inv(camera) @ np.array([centre_px[0], centre_px[1], 1.0])
    tvec = distance_mm * ray - rotation @ np.array([centre_mm[0], centre_mm[1], 0.0])
    return render(texture, cv2.Rodrigues(rotation)[0], tvec, camera, distortion), rotation, tvec


def marker_texture(marker_id: int, size_mm: float) -> Texture:
    """An ArUco DICT_4X4_50 marker at 2 px/mm with a white quiet zone; (0, 0) is its top-left corner."""
    side = round(size_mm * 2)
    marker = cv2.aruco.generateImageMarker(
        cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), marker_id, side
    )
    return Texture(cv2.copyMakeBorder(marker, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=255), (20.0, 20.0))


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["calibrate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flat_chessboard_scale_is_within_a_tenth_of_a_percent(tmp_path: Path) -> None:
    image, _, _ = view(chessboard_texture(9, 6, 10.0), (0, 0, 15), (300, 220), 300.0, BOARD_CENTRE_MM)
    cv2.imwrite(str(tmp_path / "plate.png"), image)
    out = tmp_path / "station.json"
    proc = lineside(
        "calibrate", "scale", "--image", str(tmp_path / "plate.png"), "--target", BOARD, "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "mm/px on the working plane" in proc.stdout and f"saved section 'scale' in {out}" in proc.stdout
    scale = load_calibration(out).scale_for((480, 640))
    assert scale is not None and scale.homography is None
    assert abs(scale.mm_per_px - 300.0 / 600.0) / 0.5 < 0.001  # stated tolerance: 0.1% (the issue asks 1%)


def test_aruco_marker_scale_is_within_half_a_percent() -> None:
    image, _, _ = view(marker_texture(7, 50.0), (0, 0, 30), (340, 260), 300.0, (25.0, 25.0))
    measured = measure_scale(image, parse_target("aruco:7:50mm"), "plate.png")
    assert measured.homography is None and measured.points == 4
    assert abs(measured.mm_per_px - 0.5) / 0.5 < 0.005
    with pytest.raises(LinesideError, match=r"plate.png: aruco marker 8 50mm DICT_4X4_50 not found"):
        measure_scale(image, parse_target("aruco:8:50mm"), "plate.png")


def _plane_point(pixel: tuple[float, float], rotation: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """Where the ray through a pixel meets the target's plane, in the target's own mm."""
    plane_to_image = FLAT_CAMERA @ np.column_stack([rotation[:, 0], rotation[:, 1], tvec])
    point = np.linalg.solve(plane_to_image, np.array([pixel[0], pixel[1], 1.0]))
    on_plane: np.ndarray = point[:2] / point[2]
    return on_plane


def test_tilted_plane_homography_places_points_across_the_frame_within_half_a_mm(tmp_path: Path) -> None:
    image, rotation, tvec = view(
        chessboard_texture(9, 6, 10.0), (25, 10, 10), (320, 240), 300.0, BOARD_CENTRE_MM
    )
    measured = measure_scale(image, parse_target(BOARD), "tilted.png")
    assert measured.homography is not None and measured.variation_pct > 5
    true_tilt = math.degrees(math.acos(rotation[2, 2]))
    assert abs(measured.tilt_deg - true_tilt) < 3.0  # approximate: no intrinsics in this file
    scale = measured.scale()
    pixels = [(x, y) for x in (20, 170, 320, 470, 620) for y in (20, 160, 300, 460)]
    mapped = [np.array(scale.point_to_mm(x, y)) for x, y in pixels]
    truth = [_plane_point(p, rotation, tvec) for p in pixels]
    errors = [
        abs(np.linalg.norm(mapped[i] - mapped[j]) - np.linalg.norm(truth[i] - truth[j]))
        for i, j in itertools.combinations(range(len(pixels)), 2)
    ]
    assert max(errors) < 0.5  # stated tolerance: 0.5 mm between any two points of the frame
    # Same conventions as the flat-on scale: origin at the top-left pixel, x to the right, y down.
    assert np.allclose(scale.point_to_mm(0, 0), (0, 0), atol=1e-6)
    right, down = np.array(scale.point_to_mm(600, 240)), np.array(scale.point_to_mm(320, 460))
    assert right[0] > 100 and down[1] > 50
    # The runtime reads the same conversion back from the file.
    update_calibration(
        tmp_path / "station.json", CameraFrame(width=640, height=480), scale=measured.section()
    )
    loaded = load_calibration(tmp_path / "station.json").scale_for((480, 640))
    assert loaded is not None and loaded.point_to_mm(500, 400) == pytest.approx(scale.point_to_mm(500, 400))


def test_a_scale_homography_whose_horizon_crosses_the_frame_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "station.json"
    scale = {"mm_per_px": 0.5, "homography": [1, 0, 0, 0, 1, 0, 0.01, 0, -1]}  # w = 0 at x = 100
    path.write_text(json.dumps({"schema": 1, "camera": {"width": 640, "height": 480}, "scale": scale}))
    with pytest.raises(LinesideError, match="the plane's horizon crosses the frame"):
        load_calibration(path)


def test_scale_is_measured_on_undistorted_frames_when_the_file_has_intrinsics(tmp_path: Path, capsys) -> None:
    out = tmp_path / "station.json"
    intrinsics = _intrinsics(CAMERA, DISTORTION)
    update_calibration(out, CameraFrame(width=640, height=480), intrinsics=intrinsics)
    image, _, _ = view(
        chessboard_texture(9, 6, 10.0),
        (0, 0, 0),
        (330, 240),
        300.0,
        BOARD_CENTRE_MM,
        camera=CAMERA,
        distortion=DISTORTION,
    )
    cv2.imwrite(str(tmp_path / "plate.png"), image)
    code, text, err = _cli(
        ["scale", "--image", str(tmp_path / "plate.png"), "--target", BOARD, "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "undistorted first" in text
    calibration = load_calibration(out)
    scale = calibration.scale_for((480, 640))
    assert scale is not None and calibration.scale is not None
    fx, fy = intrinsics.undistorted_matrix[0][0], intrinsics.undistorted_matrix[1][1]
    assert abs(scale.mm_per_px - 300.0 / math.sqrt(fx * fy)) / scale.mm_per_px < 0.01
    assert calibration.scale.intrinsics_id == intrinsics.fingerprint()
    # New intrinsics make that scale stale: the runtime refuses it rather than mis-measure.
    update_calibration(
        out, CameraFrame(width=640, height=480), intrinsics=_intrinsics(CAMERA * 1.01, DISTORTION)
    )
    with pytest.raises(LinesideError, match=r"re-run `lineside calibrate scale`"):
        load_calibration(out).scale_for((480, 640))


def _intrinsics(camera: np.ndarray, distortion: np.ndarray) -> IntrinsicsSection:
    camera = camera.copy()
    camera[2] = (0, 0, 1)
    rows = tuple(tuple(float(v) for v in row) for row in camera)
    zoomed = tuple(tuple(float(v) for v in row) for row in undistorted_matrix(camera, distortion, SIZE))
    return IntrinsicsSection(
        camera_matrix=rows,
        distortion=tuple(float(v) for v in distortion),
        undistorted_matrix=zoomed,
        rms_px=0.1,
        views=10,
    )


def test_scale_bad_inputs_are_one_line_errors(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.png"
    proc = lineside(
        "calibrate", "scale", "--image", str(missing), "--target", BOARD, "--out", str(tmp_path / "s.json")
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lineside calibrate scale: {missing}: no such image file"
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640), 200, np.uint8))
    code, _, err = _cli(
        ["scale", "--image", str(blank), "--target", BOARD, "--out", str(tmp_path / "s.json")], capsys
    )
    assert code == 2 and "blank.png: chessboard 9x6 10mm not found" in err and err.count("\n") == 1
    update_calibration(tmp_path / "big.json", CameraFrame(width=1280, height=960))
    image, _, _ = view(chessboard_texture(9, 6, 10.0), (0, 0, 0), (320, 240), 300.0, BOARD_CENTRE_MM)
    cv2.imwrite(str(tmp_path / "plate.png"), image)
    code, _, err = _cli(
        [
            "scale",
            "--image",
            str(tmp_path / "plate.png"),
            "--target",
            BOARD,
            "--out",
            str(tmp_path / "big.json"),
        ],
        capsys,
    )
    assert code == 2 and "made for 1280x960 frames" in err
    assert not (tmp_path / "s.json").exists()


# A camera looking down at a robot table, slightly perspective: pixel -> robot mm.
ROBOT_H = np.array([[0.52, 0.03, 210.0], [-0.02, -0.51, 640.0], [2e-5, -1e-5, 1.0]])


def _robot_points(pixels: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pixels.reshape(-1, 1, 2).astype(np.float64), ROBOT_H).reshape(-1, 2)


def _write_pairs(path: Path, pixels: np.ndarray, noise_mm: float = 0.05, header: bool = True) -> Path:
    robot = _robot_points(pixels) + np.random.default_rng(3).normal(0, noise_mm, (len(pixels), 2))
    lines = (["px,py,rx,ry"] if header else []) + [
        f"{p[0]},{p[1]},{r[0]:.3f},{r[1]:.3f}" for p, r in zip(pixels, robot, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


PAIR_PIXELS = np.array([[50, 40], [600, 45], [590, 440], [60, 430], [320, 240], [200, 330]], dtype=np.float64)


def test_robot_plane_is_fitted_with_residuals_and_maps_new_points(tmp_path: Path) -> None:
    pairs = _write_pairs(tmp_path / "pairs.csv", PAIR_PIXELS)
    out = tmp_path / "station.json"
    proc = lineside("calibrate", "robot", "--pairs", str(pairs), "--out", str(out), "--frame", "640x480")
    assert proc.returncode == 0, proc.stderr
    assert (
        len(re.findall(r"mm +residual \d", proc.stdout)) == len(PAIR_PIXELS) and "RMS residual" in proc.stdout
    )
    assert f"saved section 'robot' in {out} (new file)" in proc.stdout
    calibration = load_calibration(out)
    assert calibration.robot is not None and calibration.robot.rms_mm < 0.1  # noise is 0.05 mm per axis
    plane = calibration.robot_plane_for((480, 640))
    assert plane is not None
    checks = np.array([[100, 100], [500, 380], [320, 50]], dtype=np.float64)
    for pixel, want in zip(checks, _robot_points(checks), strict=True):
        assert np.linalg.norm(np.array(plane.to_robot(*pixel)) - want) < 0.2  # stated: 0.2 mm


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("px,py,rx,ry\n1,2,3,4\n5,6,7,8\n9,10,11,12\n", "3 point pairs, need at least 4"),
        (
            "0,0,0,0\n100,100,50,50\n200,200,100,100\n300,300,150,150\n",
            "pixel points lie (nearly) on one line",
        ),
        ("0,0,0,0\n100,0,50,0\n200,0,100,0\n100,300,50,150\n", "pixel points lie (nearly) on one line"),
        ("1,2,3,4\n5,6,seven,8\n", ":2: expected numbers px,py,rx,ry, got '5,6,seven,8'"),
        ("1,2,3\n", ":1: expected 4 finite numbers px,py,rx,ry, got '1,2,3'"),
    ],
)
def test_bad_pairs_are_refused_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(content)
    with pytest.raises(LinesideError) as caught:
        fit_robot_plane(read_pairs(path), str(path))
    assert message in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_robot_refusals_through_the_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "station.json"
    pairs = _write_pairs(tmp_path / "pairs.csv", PAIR_PIXELS)
    code, _, err = _cli(["robot", "--pairs", str(pairs), "--out", str(out)], capsys)
    assert code == 2 and "give the frame size with --frame WxH" in err
    code, _, err = _cli(["robot", "--pairs", str(pairs), "--out", str(out), "--frame", "320x240"], capsys)
    assert code == 2 and "pair 2 is outside the 320x240 frame" in err
    typo = pairs.read_text().replace("\n320.0,240.0,", "\n320.0,240.0,1").splitlines()  # one pair off by ~1 m
    (tmp_path / "typo.csv").write_text("\n".join(typo) + "\n")
    args = ["robot", "--pairs", str(tmp_path / "typo.csv"), "--out", str(out), "--frame", "640x480"]
    code, _, err = _cli(args, capsys)
    assert code == 1 and "> --max-rms 2: not saved" in err and not out.exists()
    code, _, _ = _cli([*args, "--force"], capsys)
    assert code == 0 and load_calibration(out).robot is not None


@pytest.mark.parametrize("failing_call", [1, 2])
def test_interrupted_save_leaves_the_previous_calibration_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, failing_call: int
) -> None:
    out = tmp_path / "station.json"
    pairs = _write_pairs(tmp_path / "pairs.csv", PAIR_PIXELS)
    assert _cli(["robot", "--pairs", str(pairs), "--out", str(out), "--frame", "640x480"], capsys)[0] == 0
    before = out.read_bytes()
    real_replace, calls = os.replace, []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(dst)
        if len(calls) == failing_call:  # 1: saving <name>.prev, 2: the new file itself
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    moved = _write_pairs(tmp_path / "moved.csv", PAIR_PIXELS + 3.0)
    code, _, err = _cli(["robot", "--pairs", str(moved), "--out", str(out)], capsys)
    assert code == 2 and err.strip() == "lineside calibrate robot: No space left on device"
    assert out.read_bytes() == before
    assert load_calibration(out).robot is not None
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
