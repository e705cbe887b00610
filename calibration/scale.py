"""Millimetres per pixel on the working plane from one image of a known target lying on it.

A flat-on camera gets one factor; when the scale varies across the target (a tilted plane), the file
also gets a pixel -> plane homography, so that positions in mm stay right across the whole frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.boards import Target, approximate_camera, find_target, plane_tilt_deg
from calibration.errors import InputError
from edge.geometry import Scale
from edge.i18n import Message
from edge.station.calibfile import CalibrationFile, ScaleSection
from edge.station.undistort import Undistorter

TILT_VARIATION_PCT = 0.5  # scale spread across the target above which one factor is not good enough


@dataclass(frozen=True)
class ScaleMeasurement:
    """The measured scale, and the homography (frame px -> plane mm) when the plane is tilted."""

    mm_per_px: float
    homography: np.ndarray | None
    variation_pct: float
    tilt_deg: float
    tilt_from_intrinsics: bool
    points: int
    method: str
    intrinsics_id: str

    def section(self) -> ScaleSection:
        homography = None if self.homography is None else tuple(float(v) for v in self.homography.ravel())
        return ScaleSection(
            mm_per_px=self.mm_per_px,
            method=self.method,
            homography=homography,
            tilt_deg=round(self.tilt_deg, 2),
            intrinsics_id=self.intrinsics_id,
        )

    def scale(self) -> Scale:
        """What the runtime will use (the same conversion `CalibrationFile.scale_for` gives)."""
        section = self.section()
        return Scale(section.mm_per_px, section.homography)


def measure_scale(
    gray: np.ndarray, target: Target, origin: str, calibration: CalibrationFile | None = None
) -> ScaleMeasurement:
    """Find the target in a grayscale image (undistorted first when `calibration` has intrinsics)."""
    undistorter = Undistorter.from_calibration(calibration, origin) if calibration is not None else None
    if undistorter is not None:
        gray = undistorter.apply(gray)
    view = find_target(target, gray)
    if view is None:
        raise InputError(
            Message("calib.input.target_not_found", {"origin": origin, "target": target.describe()})
        )
    image_to_plane, _ = cv2.findHomography(view.image_points, view.object_points[:, :2], 0)
    if image_to_plane is None:
        raise InputError(Message("calib.input.degenerate_target", {"origin": origin}))
    local = np.array([local_scale(image_to_plane, x, y) for x, y in view.image_points])
    centre = view.image_points.mean(axis=0)
    at_target = local_scale(image_to_plane, float(centre[0]), float(centre[1]))
    variation = float((local.max() - local.min()) / at_target * 100.0)
    height, width = gray.shape[:2]
    intrinsics = calibration.intrinsics if calibration is not None else None
    camera = np.array(intrinsics.undistorted_matrix) if intrinsics else approximate_camera(width, height)
    tilt, _ = plane_tilt_deg(np.linalg.inv(image_to_plane), camera)
    method = f"{target.describe()}, {len(view.image_points)} points" + (", undistorted" if intrinsics else "")
    homography: np.ndarray | None = None
    mm_per_px = at_target
    if variation > TILT_VARIATION_PCT:
        homography = frame_aligned(image_to_plane, width, height, origin)
        mm_per_px = local_scale(homography, width / 2, height / 2)
    return ScaleMeasurement(
        mm_per_px=mm_per_px,
        homography=homography,
        variation_pct=variation,
        tilt_deg=tilt,
        tilt_from_intrinsics=intrinsics is not None,
        points=len(view.image_points),
        method=method,
        intrinsics_id=calibration.intrinsics_id() if calibration is not None else "",
    )


def local_scale(homography: np.ndarray, x: float, y: float) -> float:
    """mm per pixel at frame point (x, y): square root of the area ratio of the homography there."""
    h = homography
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    jacobian = np.array(
        [
            [(h[0, 0] - u * h[2, 0]) / w, (h[0, 1] - u * h[2, 1]) / w],
            [(h[1, 0] - v * h[2, 0]) / w, (h[1, 1] - v * h[2, 1]) / w],
        ]
    )
    return math.sqrt(abs(float(np.linalg.det(jacobian))))


def frame_aligned(image_to_plane: np.ndarray, width: int, height: int, origin: str) -> np.ndarray:
    """The homography re-expressed with the flat-on scale's conventions: origin at pixel (0, 0), plane
    axes along the image axes at the frame centre (the target's own axes may be turned or mirrored).
    """
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], dtype=np.float64)
    w = corners @ image_to_plane[2]
    if not (np.all(w > 0) or np.all(w < 0)):
        raise InputError(Message("calib.input.horizon", {"origin": origin}))
    cx, cy = width / 2, height / 2
    step = 1.0
    jacobian = np.column_stack(
        [
            _apply(image_to_plane, cx + step, cy) - _apply(image_to_plane, cx - step, cy),
            _apply(image_to_plane, cx, cy + step) - _apply(image_to_plane, cx, cy - step),
        ]
    ) / (2 * step)
    u, _, vt = np.linalg.svd(jacobian)
    turn = np.eye(3)
    turn[:2, :2] = (u @ vt).T  # undoes the rotation (or mirror) in the polar decomposition
    aligned = turn @ image_to_plane
    start = _apply(aligned, 0.0, 0.0)
    shift = np.array([[1, 0, -start[0]], [0, 1, -start[1]], [0, 0, 1]], dtype=np.float64)
    result = shift @ aligned
    normalised: np.ndarray = result / result[2, 2]
    return normalised


def _apply(homography: np.ndarray, x: float, y: float) -> np.ndarray:
    point = homography @ np.array([x, y, 1.0])
    mapped: np.ndarray = point[:2] / point[2]
    return mapped
