"""Small geometry shared by the detector, the decision rules and calibration: points in ROIs, mm scale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Scale:
    """Millimetres per pixel on the part's plane, from calibration.

    Today one uniform factor with the origin at the frame's top-left corner. A homography for a tilted
    camera would be added as another optional field here and used by `point_to_mm`; callers only ever
    convert through these methods, so they need not change.
    """

    mm_per_px: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mm_per_px) and self.mm_per_px > 0):
            raise ValueError(f"mm_per_px must be a positive finite number, got {self.mm_per_px}")

    def to_mm(self, px: float) -> float:
        """A length in pixels as millimetres."""
        return px * self.mm_per_px

    def point_to_mm(self, x: float, y: float) -> tuple[float, float]:
        """A frame point (pixels) as millimetres from the frame origin."""
        return x * self.mm_per_px, y * self.mm_per_px


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
    inside = [cv2.pointPolygonTest(contour, (float(px), float(py)), False) >= 0 for px, py in points]
    return np.array(inside, dtype=bool)


def polygon_area(polygon: Sequence[Sequence[float]]) -> float:
    """Unsigned area of a simple polygon, in square pixels."""
    return float(cv2.contourArea(np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)))
