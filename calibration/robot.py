"""Frame pixels -> robot-plane millimetres: a homography fitted to point pairs the integrator measured.

Pairs come from a CSV file (px,py,rx,ry per line): a point's pixel position in the frames the runtime
sees (undistorted when the calibration has intrinsics) and where the robot's tool touched it, in mm.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.errors import InputError
from edge.i18n import Message
from edge.station.calibfile import RobotSection

MIN_PAIRS = 4
COLLINEAR_RATIO = 0.01  # second/first singular value of the centred points below which they are a line


@dataclass(frozen=True)
class RobotFit:
    """The fitted homography and how well it reproduces each pair."""

    homography: np.ndarray
    pairs: np.ndarray
    residuals_mm: np.ndarray

    @property
    def rms_mm(self) -> float:
        return float(np.sqrt(np.mean(self.residuals_mm**2)))

    def section(self, intrinsics_id: str = "") -> RobotSection:
        return RobotSection(
            homography=tuple(float(v) for v in self.homography.ravel()),
            pairs=len(self.pairs),
            rms_mm=self.rms_mm,
            max_residual_mm=float(self.residuals_mm.max()),
            intrinsics_id=intrinsics_id,
        )


def read_pairs(path: Path) -> np.ndarray:
    """(N, 4) px, py, rx, ry from a CSV file; a header line and '#' comments are allowed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(Message("calib.input.no_pairs_file", {"path": path})) from None
    except (OSError, UnicodeDecodeError) as exc:  # the OS's or the codec's own words, as they said them
        raise InputError(Message("calib.input.unreadable_pairs", {"path": path, "error": str(exc)})) from None
    rows: list[list[float]] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        cells = [cell.strip() for cell in text.replace(";", ",").split(",")]
        try:
            values = [float(cell) for cell in cells]
        except ValueError:
            if not rows and number == _first_content_line(lines):
                continue  # a header such as "px,py,rx,ry"
            where = {"path": path, "line": number, "text": repr(text)}
            raise InputError(Message("calib.input.pairs_not_numbers", where)) from None
        if len(values) != 4 or not np.all(np.isfinite(values)):
            where = {"path": path, "line": number, "text": repr(text)}
            raise InputError(Message("calib.input.pairs_not_four", where))
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _first_content_line(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines, start=1) if line.split("#", 1)[0].strip())


def fit_robot_plane(pairs: np.ndarray, origin: str) -> RobotFit:
    """Least-squares homography (no RANSAC: every pair counts); InputError if too few or degenerate."""
    if len(pairs) < MIN_PAIRS:
        few = {"origin": origin, "pairs": len(pairs), "need": MIN_PAIRS}
        raise InputError(Message("calib.input.few_pairs", few))
    pixels, robot = pairs[:, :2], pairs[:, 2:]
    for which, points in (("calib.input.pixel_points", pixels), ("calib.input.robot_points", robot)):
        if _collinear(points):
            raise InputError(Message("calib.input.collinear", {"origin": origin, "which": Message(which)}))
    homography, _ = cv2.findHomography(pixels, robot, 0)
    if homography is None or not np.all(np.isfinite(homography)):
        raise InputError(Message("calib.input.no_homography", {"origin": origin}))
    mapped = cv2.perspectiveTransform(pixels.reshape(-1, 1, 2), homography).reshape(-1, 2)
    residuals = np.linalg.norm(mapped - robot, axis=1)
    return RobotFit(homography / homography[2, 2], pairs, residuals)


def _collinear(points: np.ndarray) -> bool:
    """True when the points do not span the plane: all on one line, or (with 4) any three on one."""
    if _flat(points):
        return True
    # With exactly four pairs the homography is exact; three on a line leave it undetermined.
    triples = itertools.combinations(range(MIN_PAIRS), 3)
    return len(points) == MIN_PAIRS and any(_flat(points[list(triple)]) for triple in triples)


def _flat(points: np.ndarray) -> bool:
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return bool(singular[0] == 0 or singular[1] / singular[0] < COLLINEAR_RATIO)
