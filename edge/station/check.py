"""The station check: is the camera still as sharp, as bright and where it was when calibrated?

A frame is compared with the calibration's reference frame: focus (variance of the Laplacian), exposure
(mean grey, clipped highlights and shadows) and pose (ORB features matched to the reference and a
similarity transform fitted with RANSAC: shift, rotation, scale). numpy + OpenCV only, so the runtime
can run it at start.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.station.calibfile import CameraFrame, load_calibration
from edge.station.calibsections import CheckLimits, ExposureStats, ReferenceSection

ORB_FEATURES = 2000  # enough for a 5 MP frame; ORB keeps the strongest
RATIO_TEST = 0.75  # Lowe's ratio: a match must be clearly better than the second best
RANSAC_PX = 3.0  # a match further than this from the fitted motion is an outlier
HIGHLIGHT = 250  # grey levels at or above this count as clipped white
SHADOW = 5  # ... at or below this as clipped black

Grey = npt.NDArray[np.uint8]


class Status(str, enum.Enum):
    """One check item's outcome; FAIL is the worst."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"

    @property
    def rank(self) -> int:
        return {"PASS": 0, "WARN": 1, "FAIL": 2}[self.value]


@dataclass(frozen=True)
class CheckItem:
    """One measured quantity, how it compares with the reference, and the limits it was graded by."""

    name: str
    status: Status
    value: float
    measured: str
    limits: str
    frame: str = ""

    def line(self) -> str:
        where = f"  [{self.frame}]" if self.frame else ""
        return f"{self.status.value:<4}  {self.name:<18} {self.measured:<44} ({self.limits}){where}"


@dataclass(frozen=True)
class CheckReport:
    """Every item of one check; the worst item's status is the report's."""

    items: tuple[CheckItem, ...]

    @property
    def status(self) -> Status:
        return max((item.status for item in self.items), key=lambda s: s.rank, default=Status.FAIL)

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def item(self, name: str) -> CheckItem:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(f"no check item {name!r} (have {[i.name for i in self.items]})")

    def lines(self) -> list[str]:
        return [item.line() for item in self.items]


@dataclass(frozen=True)
class Pose:
    """How the view moved from the reference to this frame, measured at the frame centre."""

    dx: float
    dy: float
    rotation_deg: float
    scale: float
    matches: int

    @property
    def shift_px(self) -> float:
        return math.hypot(self.dx, self.dy)


def to_grey(frame: npt.NDArray[np.uint8], origin: str = "frame") -> Grey:
    """An HxW or HxWx3 BGR uint8 frame as grey; LinesideError for anything else."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or 0 in frame.shape:
        raise LinesideError(f"{origin}: expected a non-empty uint8 image")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    raise LinesideError(f"{origin}: expected HxW grey or HxWx3 BGR, got shape {frame.shape}")


def focus_score(grey: Grey) -> float:
    """Variance of the Laplacian: high for a sharp, textured view, falls as it blurs."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def exposure_stats(grey: Grey) -> ExposureStats:
    pixels = grey.size
    return ExposureStats(
        mean=float(grey.mean()),
        highlights_pct=100.0 * float(np.count_nonzero(grey >= HIGHLIGHT)) / pixels,
        shadows_pct=100.0 * float(np.count_nonzero(grey <= SHADOW)) / pixels,
    )


def orb_features(grey: Grey) -> tuple[tuple[cv2.KeyPoint, ...], npt.NDArray[np.uint8] | None]:
    keypoints, descriptors = cv2.ORB.create(ORB_FEATURES).detectAndCompute(grey, None)
    return tuple(keypoints), None if descriptors is None else np.asarray(descriptors, dtype=np.uint8)


class StationReference:
    """A stored reference frame with its features computed, ready to check frames against."""

    def __init__(self, section: ReferenceSection, image: npt.NDArray[np.uint8], camera: CameraFrame) -> None:
        self.section = section
        self.camera = camera
        self._grey = to_grey(image, "reference image")
        self._keypoints, self._descriptors = orb_features(self._grey)

    @classmethod
    def load(cls, calibration_path: Path) -> StationReference:
        """A calibration file's reference; LinesideError if it has none or its image is not the stored one."""
        calibration = load_calibration(calibration_path)
        section = calibration.reference
        if section is None:
            raise LinesideError(
                f"{calibration_path}: no reference frame stored: run lineside calibrate check --set-reference"
            )
        image_path = calibration_path.parent / section.image
        try:
            data = image_path.read_bytes()
        except OSError as exc:
            raise LinesideError(f"{image_path}: reference image unreadable ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != section.image_sha256:
            raise LinesideError(f"{image_path}: reference image changed since it was stored (sha256 differs)")
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise LinesideError(f"{image_path}: reference image is not a readable image")
        camera = calibration.camera
        if image.shape[:2] != (camera.height, camera.width):
            raise LinesideError(f"{image_path}: reference image is not {camera.width}x{camera.height}")
        return cls(section, np.asarray(image, dtype=np.uint8), camera)

    def pose(self, grey: Grey) -> Pose:
        """How the view moved; `matches` 0 and no motion when too few features match to say."""
        keypoints, descriptors = orb_features(grey)
        if self._descriptors is None or descriptors is None or len(keypoints) < 2:
            return Pose(0.0, 0.0, 0.0, 1.0, matches=0)
        pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(self._descriptors, descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO_TEST * p[1].distance]
        if len(good) < 4:
            return Pose(0.0, 0.0, 0.0, 1.0, matches=len(good))
        src = np.array([self._keypoints[m.queryIdx].pt for m in good], dtype=np.float32)
        dst = np.array([keypoints[m.trainIdx].pt for m in good], dtype=np.float32)
        matrix, inliers = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX
        )
        if matrix is None or inliers is None:
            return Pose(0.0, 0.0, 0.0, 1.0, matches=0)
        centre = np.array([grey.shape[1] / 2.0, grey.shape[0] / 2.0, 1.0])
        dx, dy = (matrix @ centre)[:2] - centre[:2]
        return Pose(
            dx=float(dx),
            dy=float(dy),
            rotation_deg=math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])),
            scale=math.hypot(matrix[0, 0], matrix[1, 0]),
            matches=int(np.count_nonzero(inliers)),
        )

    def check(
        self, frame: npt.NDArray[np.uint8], limits: CheckLimits | None = None, origin: str = ""
    ) -> CheckReport:
        """Grade one frame against the reference with `limits` (default: the ones stored with it)."""
        limits = limits or self.section.limits
        grey = to_grey(frame, origin or "frame")
        height, width = grey.shape
        if (width, height) != (self.camera.width, self.camera.height):
            size = f"{width}x{height}, calibrated {self.camera.width}x{self.camera.height}"
            item = CheckItem("frame size", Status.FAIL, 0.0, size, "must be equal", origin)
            return CheckReport((item,))
        items = [_focus_item(focus_score(grey), self.section.focus, limits)]
        items += _exposure_items(exposure_stats(grey), self.section.exposure, limits)
        items += _pose_items(self.pose(grey), limits)
        return CheckReport(tuple(replace(item, frame=origin) for item in items))


def check_frame(
    calibration: Path, frame: npt.NDArray[np.uint8], limits: CheckLimits | None = None
) -> CheckReport:
    """Check one frame against the calibration file's reference (loads it: reuse a StationReference
    to check many frames)."""
    return StationReference.load(calibration).check(frame, limits)


def _graded(value: float, warn: float, fail: float) -> Status:
    """Larger is worse."""
    if value >= fail:
        return Status.FAIL
    return Status.WARN if value >= warn else Status.PASS


def _focus_item(focus: float, reference: float, limits: CheckLimits) -> CheckItem:
    ratio = focus / reference if reference > 0 else 1.0
    if ratio < limits.focus_fail_ratio:
        status = Status.FAIL
    else:
        status = Status.WARN if ratio < limits.focus_warn_ratio else Status.PASS
    return CheckItem(
        "focus",
        status,
        ratio,
        f"{focus:.1f} = {ratio:.2f} x reference {reference:.1f}",
        f"WARN < {limits.focus_warn_ratio:.2f} x, FAIL < {limits.focus_fail_ratio:.2f} x",
    )


def _exposure_items(now: ExposureStats, ref: ExposureStats, limits: CheckLimits) -> list[CheckItem]:
    moved = abs(now.mean - ref.mean)
    clip_limits = f"WARN +{limits.clipped_warn_pct:g} %, FAIL +{limits.clipped_fail_pct:g} %"
    items = [
        CheckItem(
            "exposure mean",
            _graded(moved, limits.mean_warn, limits.mean_fail),
            moved,
            f"{now.mean:.1f} grey, reference {ref.mean:.1f} ({now.mean - ref.mean:+.1f})",
            f"WARN +/-{limits.mean_warn:g}, FAIL +/-{limits.mean_fail:g}",
        )
    ]
    for name, pct, ref_pct in (
        ("highlights", now.highlights_pct, ref.highlights_pct),
        ("shadows", now.shadows_pct, ref.shadows_pct),
    ):
        grown = max(0.0, pct - ref_pct)
        items.append(
            CheckItem(
                f"{name} clipped",
                _graded(grown, limits.clipped_warn_pct, limits.clipped_fail_pct),
                grown,
                f"{pct:.2f} % of pixels, reference {ref_pct:.2f} %",
                clip_limits,
            )
        )
    return items


def _pose_items(pose: Pose, limits: CheckLimits) -> list[CheckItem]:
    if pose.matches < limits.min_matches:
        return [
            CheckItem(
                "pose",
                Status.FAIL,
                float(pose.matches),
                f"only {pose.matches} features match the reference",
                f"FAIL < {limits.min_matches}: view moved far, blocked or changed",
            )
        ]
    zoom_pct = abs(pose.scale - 1.0) * 100.0
    rotation = abs(pose.rotation_deg)
    return [
        CheckItem(
            "pose shift",
            _graded(pose.shift_px, limits.shift_warn_px, limits.shift_fail_px),
            pose.shift_px,
            f"{pose.shift_px:.1f} px (dx {pose.dx:+.1f}, dy {pose.dy:+.1f}; {pose.matches} matches)",
            f"WARN {limits.shift_warn_px:g} px, FAIL {limits.shift_fail_px:g} px",
        ),
        CheckItem(
            "pose rotation",
            _graded(rotation, limits.rotation_warn_deg, limits.rotation_fail_deg),
            rotation,
            f"{pose.rotation_deg:+.2f} deg",
            f"WARN {limits.rotation_warn_deg:g} deg, FAIL {limits.rotation_fail_deg:g} deg",
        ),
        CheckItem(
            "pose scale",
            _graded(zoom_pct, limits.scale_warn_pct, limits.scale_fail_pct),
            zoom_pct,
            f"x {pose.scale:.4f} ({(pose.scale - 1.0) * 100.0:+.2f} %)",
            f"WARN {limits.scale_warn_pct:g} %, FAIL {limits.scale_fail_pct:g} %",
        ),
    ]
