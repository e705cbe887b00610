"""Calibration targets: parse a spec ('chessboard:9x6:10mm', 'charuco:...', 'aruco:...'), find it in images.

A target found in an image is a `BoardView`: its known corners on its own plane (mm, z = 0) and in the
image (px, refined to sub-pixel), in matching order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.errors import InputError
from edge.i18n import Message, render

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_ARUCO_DICT = "DICT_4X4_50"
MIN_CHARUCO_CORNERS = 6
SPEC_FORMS = Message("calib.input.spec_forms")  # the accepted forms, said after a bad spec
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.001)


@dataclass(frozen=True)
class Chessboard:
    """A plain chessboard; cols x rows counts inner corners (a 10x7-square board is 9x6)."""

    cols: int
    rows: int
    square_mm: float

    def describe(self) -> str:
        return f"chessboard {self.cols}x{self.rows} {self.square_mm:g}mm"


@dataclass(frozen=True)
class Charuco:
    """A ChArUco board: squares_x x squares_y squares, ArUco markers of `dictionary` in the white ones."""

    squares_x: int
    squares_y: int
    square_mm: float
    marker_mm: float
    dictionary: str

    def describe(self) -> str:
        sizes = f"{self.square_mm:g}/{self.marker_mm:g}mm"
        return f"charuco {self.squares_x}x{self.squares_y} {sizes} {self.dictionary}"


@dataclass(frozen=True)
class ArucoMarker:
    """One ArUco marker, found by id; its four corners are the points (too few for intrinsics)."""

    marker_id: int
    size_mm: float
    dictionary: str = DEFAULT_ARUCO_DICT

    def describe(self) -> str:
        return f"aruco marker {self.marker_id} {self.size_mm:g}mm {self.dictionary}"


Target = Chessboard | Charuco | ArucoMarker


@dataclass(frozen=True)
class BoardView:
    """One target found in one image: object_points (N, 3) mm on its plane, image_points (N, 2) px."""

    object_points: np.ndarray
    image_points: np.ndarray

    def box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the image points (pixels, inclusive start, exclusive end)."""
        x0, y0 = np.floor(self.image_points.min(axis=0)).astype(int)
        x1, y1 = np.ceil(self.image_points.max(axis=0)).astype(int) + 1
        return int(x0), int(y0), int(x1), int(y1)


class _FieldError(ValueError):
    """What is wrong with one field of a spec, as a message (Python's own ValueErrors are said as is)."""

    def __init__(self, message: Message) -> None:
        super().__init__(render(message, "en"))
        self.message = message


def parse_target(spec: str) -> Target:
    """The target a spec names; one-line InputError naming the spec and the accepted forms."""
    kind, _, rest = spec.strip().partition(":")
    fields = rest.split(":") if rest else []
    try:
        if kind == "chessboard" and len(fields) == 2:
            cols, rows = _grid(fields[0])
            if min(cols, rows) < 3:
                raise _FieldError(Message("calib.input.min_chessboard"))
            return Chessboard(cols, rows, _mm(fields[1]))
        if kind == "charuco" and len(fields) == 4:
            return _charuco(fields)
        if kind == "aruco" and len(fields) in (2, 3):
            dictionary = _dictionary(fields[2]) if len(fields) == 3 else DEFAULT_ARUCO_DICT
            marker_id = int(fields[0])
            if not 0 <= marker_id < _dictionary_size(dictionary):
                raise _FieldError(
                    Message("calib.input.not_in_dictionary", {"id": marker_id, "dictionary": dictionary})
                )
            return ArucoMarker(marker_id, _mm(fields[1]), dictionary)
    except ValueError as exc:
        problem = exc.message if isinstance(exc, _FieldError) else str(exc)
        said = {"spec": repr(spec), "problem": problem, "forms": SPEC_FORMS}
        raise InputError(Message("calib.input.target_problem", said)) from None
    raise InputError(Message("calib.input.target", {"spec": repr(spec), "forms": SPEC_FORMS}))


def _grid(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if match is None:
        raise _FieldError(Message("calib.input.not_grid", {"text": repr(text)}))
    return int(match.group(1)), int(match.group(2))


def _mm(text: str) -> float:
    value = float(text.strip().lower().removesuffix("mm"))
    if not (math.isfinite(value) and value > 0):
        raise _FieldError(Message("calib.input.not_positive_mm", {"text": repr(text)}))
    return value


def _dictionary(name: str) -> str:
    full = name.strip().upper()
    full = full if full.startswith("DICT_") else f"DICT_{full}"
    if not isinstance(getattr(cv2.aruco, full, None), int):
        raise _FieldError(Message("calib.input.unknown_dictionary", {"name": repr(name)}))
    return full


def _dictionary_size(name: str) -> int:
    return int(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name)).bytesList.shape[0])


def _charuco(fields: list[str]) -> Charuco:
    squares_x, squares_y = _grid(fields[0])
    square, marker, dictionary = _mm(fields[1]), _mm(fields[2]), _dictionary(fields[3])
    if min(squares_x, squares_y) < 3:
        raise _FieldError(Message("calib.input.min_charuco"))
    if marker >= square:
        raise _FieldError(Message("calib.input.marker_too_big", {"marker": marker, "square": square}))
    if _dictionary_size(dictionary) < squares_x * squares_y // 2:
        few = {"dictionary": dictionary, "x": squares_x, "y": squares_y}
        raise _FieldError(Message("calib.input.few_markers", few))
    return Charuco(squares_x, squares_y, square, marker, dictionary)


def find_target(target: Target, gray: np.ndarray) -> BoardView | None:
    """The target's corners in a grayscale image, sub-pixel refined; None when it is not (wholly) found."""
    if isinstance(target, Chessboard):
        return _find_chessboard(target, gray)
    if isinstance(target, Charuco):
        return _find_charuco(target, gray)
    return _find_marker(target, gray)


def _find_chessboard(board: Chessboard, gray: np.ndarray) -> BoardView | None:
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, (board.cols, board.rows), flags=flags)
    if not found:
        return None
    # The search window must stay inside one square, or a neighbouring corner pulls the estimate.
    spacing = float(np.linalg.norm(corners[1, 0] - corners[0, 0]))
    half = int(max(2, min(11, spacing * 0.4)))
    corners = cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), _SUBPIX_CRITERIA)
    grid = np.mgrid[0 : board.cols, 0 : board.rows].T.reshape(-1, 2) * board.square_mm
    object_points = np.hstack([grid, np.zeros((len(grid), 1))]).astype(np.float32)
    return BoardView(object_points, corners.reshape(-1, 2).astype(np.float32))


def charuco_board(board: Charuco) -> cv2.aruco.CharucoBoard:
    """The OpenCV board object (units: mm), also used to print or render the board."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
    return cv2.aruco.CharucoBoard(
        (board.squares_x, board.squares_y), board.square_mm, board.marker_mm, dictionary
    )


def _find_charuco(board: Charuco, gray: np.ndarray) -> BoardView | None:
    cv_board = charuco_board(board)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(cv_board).detectBoard(gray)
    if ids is None or len(ids) < MIN_CHARUCO_CORNERS or cv_board.checkCharucoCornersCollinear(ids):
        return None
    object_points = np.asarray(cv_board.getChessboardCorners(), dtype=np.float32)[ids.flatten()]
    return BoardView(object_points.reshape(-1, 3), corners.reshape(-1, 2).astype(np.float32))


def _find_marker(marker: ArucoMarker, gray: np.ndarray) -> BoardView | None:
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, marker.dictionary))
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary, params).detectMarkers(gray)
    if ids is None:
        return None
    hits = [i for i, found in enumerate(ids.flatten()) if found == marker.marker_id]
    if len(hits) != 1:  # two markers with one id: which one is on the working plane is unknowable
        return None
    s = marker.size_mm
    # OpenCV orders marker corners clockwise from the marker's top-left.
    object_points = np.array([[0, 0, 0], [s, 0, 0], [s, s, 0], [0, s, 0]], dtype=np.float32)
    return BoardView(object_points, corners[hits[0]].reshape(4, 2).astype(np.float32))


def read_gray(path: Path) -> np.ndarray:
    """An image file as 8-bit grayscale; one-line InputError when missing or not an image."""
    if not path.is_file():
        raise InputError(Message("calib.input.no_image", {"path": path}))
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(Message("calib.input.unreadable_image", {"path": path}))
    return np.asarray(image)


def list_images(folder: Path) -> list[Path]:
    """The image files in a folder, sorted by name; InputError when there are none."""
    if not folder.is_dir():
        raise InputError(Message("calib.input.no_folder", {"path": folder}))
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise InputError(Message("calib.input.no_images", {"path": folder, "suffixes": suffixes}))
    return images


def sharpness(gray: np.ndarray, box: tuple[int, int, int, int] | None = None) -> float:
    """Variance of the Laplacian over `box` (default: the whole image), scaled to full 0-255 contrast.

    Scaling makes one limit work for dim and bright scenes; a blurred view scores low either way.
    """
    if box is not None:
        x0, y0, x1, y1 = box
        gray = gray[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
    if gray.size < 9:
        return 0.0
    low, high = np.percentile(gray, (2, 98))
    contrast = max(float(high - low), 16.0)
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    return variance * (255.0 / contrast) ** 2


def plane_tilt_deg(plane_to_image: np.ndarray, camera_matrix: np.ndarray) -> tuple[float, np.ndarray]:
    """Tilt of a plane to the optical axis (degrees) and its unit normal, from its plane->image homography.

    With an approximate camera matrix the angle is approximate, but a fronto-parallel plane still
    comes out at 0 degrees: its homography has no perspective part whatever the focal length.
    """
    columns = np.linalg.inv(camera_matrix) @ plane_to_image
    normal = np.cross(columns[:, 0], columns[:, 1])
    normal = normal / np.linalg.norm(normal)
    if normal[2] < 0:
        normal = -normal
    return math.degrees(math.acos(min(1.0, float(normal[2])))), normal


def approximate_camera(width: int, height: int) -> np.ndarray:
    """A camera matrix guess (about 53 degrees across, centred) for when no intrinsics are known."""
    focal = float(max(width, height))
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
