"""`lineside calibrate intrinsics`: synthetic views of a known board through a known camera are recovered.

The views are rendered by ray casting: each pixel is undistorted (inverse of the known lens model),
cast onto the board plane at a known pose and sampled from the board's texture.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.boards import Charuco, charuco_board, find_target, list_images, parse_target, read_gray
from calibration.intrinsics import calibrate_intrinsics
from edge.errors import LinesideError
from edge.station.calibfile import CalibrationFile, CameraFrame, load_calibration
from edge.station.undistort import Undistorter
from lineside.cli import main
from tests.line import lineside

SIZE = (640, 480)
CAMERA = np.array([[610.0, 0.0, 326.0], [0.0, 604.0, 236.0], [0.0, 0.0, 1.0]])
DISTORTION = np.array([-0.24, 0.09, 0.0, 0.0, 0.0])
TEXTURE_PX_PER_MM = 2.0


@dataclass(frozen=True)
class Texture:
    """An image of a flat target and where board (0, 0) mm lies in it."""

    image: np.ndarray
    origin_px: tuple[float, float]


def chessboard_texture(cols: int, rows: int, square_mm: float) -> Texture:
    """Inner corners cols x rows; a white margin of one square; board (0, 0) is the first inner corner."""
    square = round(square_mm * TEXTURE_PX_PER_MM)
    image = np.full(((rows + 3) * square, (cols + 3) * square), 255, np.uint8)
    for j in range(rows + 1):
        for i in range(cols + 1):
            if (i + j) % 2 == 0:
                y, x = (j + 1) * square, (i + 1) * square
                image[y : y + square, x : x + square] = 0
    return Texture(image, (2 * square, 2 * square))


def pose(tilt: tuple[float, float, float], centre_px: tuple[float, float], distance_mm: float, centre_mm):
    """rvec, tvec turning the board by `tilt` (degrees about x, y, z) and putting its point `centre_mm`
    at `distance_mm` on the ray through image `centre_px`."""
    rx, ry, rz = tilt
    rotation = (
        cv2.Rodrigues(np.array([math.radians(rx), 0.0, 0.0]))[0]
        @ cv2.Rodrigues(np.array([0.0, math.radians(ry), 0.0]))[0]
        @ cv2.Rodrigues(np.array([0.0, 0.0, math.radians(rz)]))[0]
    )
    ray = np.linalg.inv(CAMERA) @ np.array([centre_px[0], centre_px[1], 1.0])
    tvec = distance_mm * ray - rotation @ np.array([centre_mm[0], centre_mm[1], 0.0])
    return cv2.Rodrigues(rotation)[0], tvec


def render(
    texture: Texture,
    rvec: np.ndarray,
    tvec: np.ndarray,
    camera: np.ndarray = CAMERA,
    distortion: np.ndarray = DISTORTION,
    *,
    noise: float = 2.0,
    seed: int = 0,
) -> np.ndarray:
    """The board seen by the camera: grey 8-bit, background mid-grey, a little sensor noise."""
    width, height = SIZE
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    xd = (u - camera[0, 2]) / camera[0, 0]
    yd = (v - camera[1, 2]) / camera[1, 1]
    k1, k2 = distortion[0], distortion[1]
    xu, yu = xd.copy(), yd.copy()
    for _ in range(30):  # fixed point of x_d = x_u * (1 + k1 r^2 + k2 r^4), radial model only
        r2 = xu * xu + yu * yu
        factor = 1 + k1 * r2 + k2 * r2 * r2
        xu, yu = xd / factor, yd / factor
    rotation = cv2.Rodrigues(rvec)[0]
    plane_to_camera = np.column_stack([rotation[:, 0], rotation[:, 1], np.asarray(tvec).reshape(3)])
    rays = np.stack([xu, yu, np.ones_like(xu)], axis=-1) @ np.linalg.inv(plane_to_camera).T
    bx, by = rays[..., 0] / rays[..., 2], rays[..., 1] / rays[..., 2]
    map_x = (bx * TEXTURE_PX_PER_MM + texture.origin_px[0] - 0.5).astype(np.float32)
    map_y = (by * TEXTURE_PX_PER_MM + texture.origin_px[1] - 0.5).astype(np.float32)
    view = cv2.remap(texture.image, map_x, map_y, cv2.INTER_LINEAR, borderValue=128)
    rng = np.random.default_rng(seed)
    noisy = view.astype(np.float64) + rng.normal(0.0, noise, view.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def charuco_texture(board: Charuco) -> Texture:
    """The ChArUco board as OpenCV draws it, with a white margin; board (0, 0) is its top-left corner."""
    width = round(board.squares_x * board.square_mm * TEXTURE_PX_PER_MM)
    height = round(board.squares_y * board.square_mm * TEXTURE_PX_PER_MM)
    drawn = charuco_board(board).generateImage((width, height), marginSize=0)
    margin = round(board.square_mm * TEXTURE_PX_PER_MM)
    return Texture(
        cv2.copyMakeBorder(drawn, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255),
        (margin, margin),
    )


# (tilt about x, about y, about z) degrees, board centre in the image, distance mm: tilted in different
# directions and reaching the corners, as the --help asks of a technician.
VIEWS = [
    (20, 0, 0, (200, 150), 260),
    (-20, 0, 5, (440, 330), 260),
    (0, 25, -5, (450, 140), 270),
    (0, -25, 0, (190, 340), 270),
    (15, 15, 10, (320, 240), 240),
    (-15, -20, -10, (330, 250), 250),
    (25, -15, 0, (460, 350), 280),
    (-25, 15, 5, (180, 130), 280),
    (10, -25, 30, (320, 120), 300),
    (-10, 25, -30, (320, 360), 300),
]
BOARD = "chessboard:9x6:10mm"
BOARD_CENTRE_MM = (40.0, 25.0)


def write_views(folder: Path, texture: Texture, centre_mm, tilted: bool = True, blur: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (rx, ry, rz, centre, distance) in enumerate(VIEWS):
        rvec, tvec = pose((rx if tilted else 0, ry if tilted else 0, rz), centre, distance, centre_mm)
        image = render(texture, rvec, tvec, seed=i)
        if blur:
            image = cv2.GaussianBlur(image, (0, 0), blur)
        cv2.imwrite(str(folder / f"view_{i:02d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("views")
    return write_views(folder, chessboard_texture(9, 6, 10.0), BOARD_CENTRE_MM)


def _calibrate(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["calibrate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_known_camera_matrix_and_distortion_are_recovered(views: Path) -> None:
    result = calibrate_intrinsics(list_images(views), parse_target(BOARD), BOARD)
    k = result.camera_matrix
    # Stated tolerances (the issue asks 2%): fx, fy within 0.5%; cx, cy within 1%; k1, k2 within 0.01, 0.02.
    for got, want in ((k[0, 0], 610.0), (k[1, 1], 604.0)):
        assert abs(got - want) / want < 0.005, (got, want)
    for got, want in ((k[0, 2], 326.0), (k[1, 2], 236.0)):
        assert abs(got - want) / want < 0.01, (got, want)
    assert abs(result.distortion[0] - DISTORTION[0]) < 0.01
    assert abs(result.distortion[1] - DISTORTION[1]) < 0.02
    assert result.rms_px < 0.15
    assert result.used() == len(VIEWS) and all(
        v.error_px is not None and v.error_px < 0.5 for v in result.views
    )


def test_cli_saves_intrinsics_and_the_runtime_undistorts_straight(views: Path, tmp_path: Path) -> None:
    out = tmp_path / "station.json"
    proc = lineside("calibrate", "intrinsics", "--images", str(views), "--board", BOARD, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "view_03.png" in proc.stdout and "RMS reprojection error" in proc.stdout
    assert f"saved section 'intrinsics' in {out}" in proc.stdout
    calibration = load_calibration(out)
    assert calibration.camera == CameraFrame(width=640, height=480) and calibration.intrinsics is not None
    undistorter = Undistorter.from_calibration(calibration)
    assert undistorter is not None
    # A flat board near the corner: its corners bend under barrel distortion, lie on a plane once undone.
    rvec, tvec = pose((0, 0, 0), (170, 130), 260, BOARD_CENTRE_MM)
    raw = render(chessboard_texture(9, 6, 10.0), rvec, tvec)
    assert _homography_misfit(raw) > 0.6
    assert _homography_misfit(undistorter.apply(raw)) < 0.2
    assert undistorter.apply(cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR)).shape == (480, 640, 3)
    with pytest.raises(LinesideError, match="made for 640x480 frames, this frame is 320x240"):
        undistorter.apply(np.zeros((240, 320), np.uint8))


def _homography_misfit(gray: np.ndarray) -> float:
    """Largest distance (px) of a board corner from the best plane->image homography: 0 for a pinhole."""
    view = find_target(parse_target(BOARD), gray)
    assert view is not None
    homography, _ = cv2.findHomography(view.object_points[:, :2], view.image_points, 0)
    fitted = cv2.perspectiveTransform(view.object_points[:, None, :2], homography).reshape(-1, 2)
    return float(np.linalg.norm(fitted - view.image_points, axis=1).max())


def test_no_intrinsics_means_no_undistortion() -> None:
    assert Undistorter.from_calibration(CalibrationFile(camera=CameraFrame(width=64, height=48))) is None


def test_blurred_and_boardless_views_are_dropped_and_named(views: Path, tmp_path: Path, capsys) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(views, mixed)
    cv2.imwrite(str(mixed / "blurred.png"), cv2.GaussianBlur(read_gray(views / "view_00.png"), (0, 0), 3))
    cv2.imwrite(str(mixed / "empty.png"), np.full((480, 640), 128, np.uint8))
    code, out, _ = _calibrate(
        ["intrinsics", "--images", str(mixed), "--board", BOARD, "--out", str(tmp_path / "s.json")], capsys
    )
    assert code == 0
    assert re.search(r"blurred.png +not used: blurred \(sharpness \d+ < 200\)", out)
    assert re.search(r"empty.png +not used: board not found", out)
    assert "intrinsics from 10 of 12 images" in out


@pytest.mark.parametrize(
    ("make_set", "message"),
    [
        (
            "blurred",
            r"only 0 usable views of chessboard 9x6 10mm \(need 8\); blurred: view_00.png, view_01.png",
        ),
        ("few", r"only 5 usable views of chessboard 9x6 10mm \(need 8\)$"),
        ("flat", r"the 10 views are all tilted alike \(board normals within \d+\.\d degrees, need 10\)"),
        ("wrong_board", r"chessboard 7x5 10mm not found in any of the 10 images: wrong board spec or size\?"),
    ],
)
def test_ill_posed_sets_are_refused_in_one_line_and_nothing_is_saved(
    views: Path, tmp_path: Path, capsys, make_set: str, message: str
) -> None:
    board = BOARD
    if make_set == "blurred":
        folder = tmp_path / "blurred"
        folder.mkdir()
        for image in sorted(views.iterdir()):
            cv2.imwrite(str(folder / image.name), cv2.GaussianBlur(read_gray(image), (0, 0), 3))
    elif make_set == "few":
        folder = tmp_path / "few"
        folder.mkdir()
        for image in sorted(views.iterdir())[:5]:
            shutil.copy(image, folder)
    elif make_set == "flat":
        folder = write_views(tmp_path / "flat", chessboard_texture(9, 6, 10.0), BOARD_CENTRE_MM, tilted=False)
    else:
        folder, board = views, "chessboard:7x5:10mm"
    out = tmp_path / "station.json"
    code, _, err = _calibrate(
        ["intrinsics", "--images", str(folder), "--board", board, "--out", str(out)], capsys
    )
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("lineside calibrate intrinsics: ")
    assert re.search(message, err.strip()), err
    assert not out.exists()


def test_rms_over_the_limit_is_refused_unless_forced(views: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "station.json"
    args = ["intrinsics", "--images", str(views), "--board", BOARD, "--out", str(out), "--max-rms", "0.01"]
    code, _, err = _calibrate(args, capsys)
    assert code == 1 and "> --max-rms 0.01: not saved" in err
    assert not out.exists()
    code, out_text, _ = _calibrate([*args, "--force"], capsys)
    assert code == 0 and "saved section 'intrinsics'" in out_text
    intrinsics = load_calibration(out).intrinsics
    assert intrinsics is not None and intrinsics.forced and intrinsics.views == len(VIEWS)


def test_charuco_board_gives_the_same_camera(tmp_path: Path) -> None:
    spec = "charuco:7x5:14mm:10mm:DICT_5X5_100"
    board = parse_target(spec)
    assert isinstance(board, Charuco)
    folder = write_views(tmp_path / "charuco", charuco_texture(board), (49.0, 35.0))
    result = calibrate_intrinsics(list_images(folder), board, spec)
    k = result.camera_matrix
    # Stated tolerances: fx, fy, cx, cy within 2%, k1 within 0.02.
    for got, want in ((k[0, 0], 610.0), (k[1, 1], 604.0), (k[0, 2], 326.0), (k[1, 2], 236.0)):
        assert abs(got - want) / want < 0.02, (got, want)
    assert abs(result.distortion[0] - DISTORTION[0]) < 0.02
    assert result.used() == len(VIEWS)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("chessboard:9x6", "target 'chessboard:9x6': expected chessboard:COLSxROWS:SQUAREmm"),
        ("chessboard:9by6:10mm", "'9by6' is not COLSxROWS"),
        ("chessboard:9x6:-3mm", "size '-3mm' must be a positive number of mm"),
        ("charuco:7x5:14mm:20mm:DICT_5X5_100", "marker 20mm must be smaller than the square 14mm"),
        ("charuco:7x5:14mm:10mm:DICT_9X9_1", "unknown ArUco dictionary 'DICT_9X9_1'"),
        ("aruco:77:50mm", "id 77 is not in DICT_4X4_50"),
        ("circles:4x11:20mm", "target 'circles:4x11:20mm': expected"),
    ],
)
def test_bad_target_specs_are_one_line_errors_naming_the_spec(spec: str, message: str) -> None:
    with pytest.raises(LinesideError) as caught:
        parse_target(spec)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_folder_and_unreadable_image_are_named(views: Path, tmp_path: Path) -> None:
    proc = lineside(
        "calibrate", "intrinsics", "--images", str(tmp_path / "nope"), "--board", BOARD, "--out", "x.json"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lineside calibrate intrinsics: {tmp_path / 'nope'}: no such folder"
    broken = tmp_path / "broken"
    shutil.copytree(views, broken)
    (broken / "view_05.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(LinesideError, match=r"view_05.png: not a readable image"):
        calibrate_intrinsics(list_images(broken), parse_target(BOARD), BOARD)
