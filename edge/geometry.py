"""Small geometry shared by the detector, the decision rules and calibration: points in ROIs, mm scale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Scale:
    """Millimetres per pixel on the part's plane, from calibration.

    Uniform (`homography` None): one factor, origin at the frame's top-left corner. On a tilted plane,
    `homography` (3x3 row-major, frame pixels -> plane mm, origin at the frame's top-left, axes along the
    image's at the frame centre) places points exactly, and lengths use `mm_per_px`, the scale at the frame
    centre. Callers only ever convert through `to_mm` and `point_to_mm`.
    """

    mm_per_px: float
    homography: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mm_per_px) and self.mm_per_px > 0):
            raise ValueError(f"mm_per_px must be a positive finite number, got {self.mm_per_px}")
        if self.homography is not None and (
            len(self.homography) != 9 or not all(math.isfinite(v) for v in self.homography)
        ):
            raise ValueError("homography must be 9 finite numbers (3x3, row-major)")

    def to_mm(self, px: float) -> float:
        """A length in pixels as millimetres."""
        return px * self.mm_per_px

    def point_to_mm(self, x: float, y: float) -> tuple[float, float]:
        """A frame point (pixels) as millimetres from the frame origin."""
        if self.homography is not None:
            return map_point(self.homography, x, y)
        return x * self.mm_per_px, y * self.mm_per_px


def map_point(homography: Sequence[float], x: float, y: float) -> tuple[float, float]:
    """The point (x, y) through a 3x3 row-major homography; ValueError at its horizon (no image there)."""
    h = homography
    w = h[6] * x + h[7] * y + h[8]
    if w == 0.0 or not math.isfinite(w):
        raise ValueError(f"point ({x}, {y}) lies on the homography's horizon")
    return (h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w


def points_in_rect(points: npt.NDArray[np.float64], rect: Sequence[float]) -> npt.NDArray[np.bool_]:
    """For (N, 2) points, whether each lies in the x, y, w, h rectangle (edges count as inside)."""
    x, y, w, h = rect
    px, py = points[:, 0], points[:, 1]
    return (px >= x) & (px <= x + w) & (py >= y) & (py <= y + h)


def points_in_polygon(
    points: npt.NDArray[np.float64], polygon: Sequence[Sequence[float]]
) -> npt.NDArray[np.bool_]:
    """For (N, 2) points, whether each lies in the polygon (edges count as inside)."""
    contour = np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)
    import cv2  # here, not at the top: the config (read by every process) imports this module

    inside = [cv2.pointPolygonTest(contour, (float(px), float(py)), False) >= 0 for px, py in points]
    return np.array(inside, dtype=bool)


def polygon_area(polygon: Sequence[Sequence[float]]) -> float:
    """Unsigned area of a simple polygon, in square pixels."""
    import cv2

    return float(cv2.contourArea(np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)))
