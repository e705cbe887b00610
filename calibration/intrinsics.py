"""Camera intrinsics from views of a chessboard or ChArUco board: matrix, distortion, per-view errors.

Refuses sets that cannot give a trustworthy lens model: too few usable views, views all at one tilt,
board not found; blurred views are dropped and named.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.boards import (
    ArucoMarker,
    BoardView,
    Target,
    find_target,
    plane_tilt_deg,
    read_gray,
    sharpness,
)
from calibration.errors import InputError
from calibration.refusal import RefusalError
from edge.i18n import Message
from edge.station.calibfile import IntrinsicsSection

MIN_VIEWS = 8
MIN_TILT_SPREAD_DEG = 10.0  # between the most differently tilted views; parallel views leave focal unknown
DEFAULT_MIN_SHARPNESS = 200.0  # contrast-scaled variance of the Laplacian over the board; sharp ~ 1000s
NAMES_SHOWN = 4


@dataclass(frozen=True)
class ViewResult:
    """One image of the set: its sharpness, and either its reprojection error or why it was not used."""

    path: Path
    sharpness: float
    error_px: float | None = None
    rejected: str = ""


@dataclass(frozen=True)
class IntrinsicsResult:
    """A computed lens model with what it was computed from."""

    image_size: tuple[int, int]
    camera_matrix: np.ndarray
    distortion: np.ndarray
    undistorted_matrix: np.ndarray
    rms_px: float
    tilt_spread_deg: float
    views: tuple[ViewResult, ...]
    board: str

    def used(self) -> int:
        return sum(1 for view in self.views if not view.rejected)

    def section(self, forced: bool = False) -> IntrinsicsSection:
        """The calibration-file section (the runtime rebuilds the undistortion map from it)."""
        return IntrinsicsSection(
            camera_matrix=_matrix3(self.camera_matrix),
            distortion=tuple(float(v) for v in self.distortion.ravel()),
            undistorted_matrix=_matrix3(self.undistorted_matrix),
            rms_px=self.rms_px,
            views=self.used(),
            board=self.board,
            forced=forced,
        )


def _matrix3(matrix: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    return tuple((float(row[0]), float(row[1]), float(row[2])) for row in matrix)


def calibrate_intrinsics(
    images: Sequence[Path],
    target: Target,
    board_spec: str,
    min_sharpness: float = DEFAULT_MIN_SHARPNESS,
    fix_k3: bool = True,
) -> IntrinsicsResult:
    """Calibrate from image files; InputError or RefusalError (one line) when the set is unusable."""
    if isinstance(target, ArucoMarker):
        raise InputError(Message("calib.input.marker_intrinsics", {"spec": board_spec}))
    size, reports, found = _collect_views(images, target, min_sharpness)
    if len(found) < MIN_VIEWS:
        raise RefusalError(_too_few_message(target.describe(), reports, len(found)))
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    object_points = [view.object_points for view in found.values()]
    image_points = [view.image_points for view in found.values()]
    try:
        rms, matrix, distortion, rvecs, tvecs = cv2.calibrateCamera(
            object_points, image_points, size, None, None, flags=flags
        )
    except cv2.error as exc:
        opencv = str(exc).strip().splitlines()[-1]  # OpenCV's own words, as it said them
        raise InputError(Message("calib.input.opencv_failed", {"error": opencv})) from None
    if not (
        np.all(np.isfinite(matrix))
        and np.all(np.isfinite(distortion))
        and min(matrix[0, 0], matrix[1, 1]) > 0
    ):
        raise RefusalError(Message("calib.refuse.no_convergence", {"views": len(found)}))
    spread = _tilt_spread(list(found.values()), matrix, distortion)
    if spread < MIN_TILT_SPREAD_DEG:
        tilt = {"views": len(found), "spread": spread, "need": MIN_TILT_SPREAD_DEG}
        raise RefusalError(Message("calib.refuse.tilted_alike", tilt))
    errors = {
        index: _view_error(view, matrix, distortion, rvec, tvec)
        for (index, view), rvec, tvec in zip(found.items(), rvecs, tvecs, strict=True)
    }
    views = tuple(ViewResult(r.path, r.sharpness, errors.get(i), r.rejected) for i, r in enumerate(reports))
    undistorted = undistorted_matrix(matrix, distortion, size)
    return IntrinsicsResult(
        size, matrix, distortion.ravel(), undistorted, float(rms), spread, views, board_spec
    )


def _collect_views(
    images: Sequence[Path], target: Target, min_sharpness: float
) -> tuple[tuple[int, int], list[ViewResult], dict[int, BoardView]]:
    """Read every image, find the board, judge sharpness; all images must share one size."""
    size: tuple[int, int] | None = None
    reports: list[ViewResult] = []
    found: dict[int, BoardView] = {}
    for index, path in enumerate(images):
        gray = read_gray(path)
        image_size = (gray.shape[1], gray.shape[0])
        if size is None:
            size = image_size
        elif image_size != size:
            sizes = {"path": path, "width": image_size[0], "height": image_size[1]}
            raise InputError(Message("calib.input.other_size", {**sizes, "w0": size[0], "h0": size[1]}))
        view = find_target(target, gray)
        score = sharpness(gray, view.box() if view is not None else None)
        if view is None:
            reports.append(ViewResult(path, score, rejected="board not found"))
        elif score < min_sharpness:
            reports.append(
                ViewResult(path, score, rejected=f"blurred (sharpness {score:.0f} < {min_sharpness:g})")
            )
        else:
            reports.append(ViewResult(path, score))
            found[index] = view
    if size is None:
        raise InputError(Message("calib.input.no_images_given"))
    return size, reports, found


def _too_few_message(board: str, reports: list[ViewResult], usable: int) -> Message:
    blurred = [r.path.name for r in reports if r.rejected.startswith("blurred")]
    missing = [r.path.name for r in reports if r.rejected == "board not found"]
    if usable == 0 and not blurred:
        return Message("calib.refuse.board_nowhere", {"board": board, "images": len(reports)})
    said = {
        "usable": usable,
        "board": board,
        "need": MIN_VIEWS,
        "blurred": Message("calib.refuse.blurred", {"names": _names(blurred)}) if blurred else "",
        "missing": Message("calib.refuse.missing", {"names": _names(missing)}) if missing else "",
    }
    return Message("calib.refuse.too_few", said)


def _names(names: list[str]) -> Message | str:
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        return Message("calib.refuse.names_more", {"names": shown, "more": len(names) - NAMES_SHOWN})
    return shown


def _tilt_spread(views: list[BoardView], matrix: np.ndarray, distortion: np.ndarray) -> float:
    """Largest angle between two views' board normals, from lens-corrected points.

    Correcting the lens first matters: barrel distortion makes a flat board near a corner look tilted.
    A fronto-parallel board's homography has no perspective part, so it reads 0 degrees even if the
    focal length (which such a set cannot determine) is wrong.
    """
    normals = []
    for view in views:
        points = cv2.undistortPoints(view.image_points.reshape(-1, 1, 2), matrix, distortion, P=matrix)
        homography, _ = cv2.findHomography(view.object_points[:, :2], points.reshape(-1, 2), 0)
        if homography is None:
            continue
        normals.append(plane_tilt_deg(homography, matrix)[1])
    angles = [
        math.degrees(math.acos(min(1.0, abs(float(a @ b))))) for a, b in itertools.combinations(normals, 2)
    ]
    return max(angles, default=0.0)


def _view_error(
    view: BoardView, matrix: np.ndarray, distortion: np.ndarray, rvec: np.ndarray, tvec: np.ndarray
) -> float:
    projected, _ = cv2.projectPoints(view.object_points, rvec, tvec, matrix, distortion)
    residuals = projected.reshape(-1, 2) - view.image_points
    return float(np.sqrt(np.mean(np.sum(residuals**2, axis=1))))


def undistorted_matrix(matrix: np.ndarray, distortion: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The undistorted frames' matrix: the raw one zoomed just enough that every pixel comes from the frame.

    One zoom for both axes and the principal point kept, unlike cv2.getOptimalNewCameraMatrix, which
    may stretch one axis more than the other and so make a uniform mm scale wrong along one of them.
    """
    width, height = size
    xs, ys = np.linspace(0, width - 1, 64), np.linspace(0, height - 1, 48)
    border = np.concatenate(
        [
            np.column_stack([xs, np.zeros_like(xs)]),
            np.column_stack([xs, np.full_like(xs, height - 1)]),
            np.column_stack([np.zeros_like(ys), ys]),
            np.column_stack([np.full_like(ys, width - 1), ys]),
        ]
    )
    centre, focal = matrix[:2, 2], np.array([matrix[0, 0], matrix[1, 1]])

    def inside(zoom: float) -> bool:
        rays = np.column_stack([(border - centre) / (focal * zoom), np.ones(len(border))])
        source, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), matrix, distortion)
        source = source.reshape(-1, 2)
        return bool(np.all((source >= -0.5) & (source <= np.array([width - 0.5, height - 0.5]))))

    low, high = 0.25, 4.0
    if not inside(high):
        raise RefusalError(Message("calib.refuse.no_usable_frame"))
    for _ in range(40):  # bisection: the smallest zoom whose whole frame lies inside the raw one
        middle = (low + high) / 2
        low, high = (low, middle) if inside(middle) else (middle, high)
    zoomed: np.ndarray = matrix.astype(np.float64).copy()
    zoomed[0, 0] *= high
    zoomed[1, 1] *= high
    return zoomed
