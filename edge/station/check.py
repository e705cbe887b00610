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
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.i18n import ENGLISH, Message, render, say
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
    # `measured` and `limits` as catalog messages (docs/i18n.md): what `line` says in another language.
    said: tuple[Message, Message] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, name: str, status: Status, value: float, measured: Message, limits: Message) -> CheckItem:
        """An item whose measurement and limits are said from the catalog (English kept as before)."""
        return cls(name, status, value, render(measured, "en"), render(limits, "en"), said=(measured, limits))

    def line(self, lang: str | None = "en") -> str:
        """The item in `lang` (None: the locale's): status, name, measurement, limits, frame."""
        where = f"  [{self.frame}]" if self.frame else ""
        measured, limits = self.measured, self.limits
        if self.said is not None:
            measured, limits = (render(message, lang) for message in self.said)
        name_id = "check.item." + self.name.replace(" ", "_")
        name = say(name_id, lang) if name_id in ENGLISH else self.name
        return f"{say(f'check.{self.status.value}', lang):<4}  {name:<18} {measured:<44} ({limits}){where}"


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

    def lines(self, lang: str | None = "en") -> list[str]:
        return [item.line(lang) for item in self.items]


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
            sizes = {"width": width, "height": height, "cw": self.camera.width, "ch": self.camera.height}
            size = Message("check.m.size", sizes)
            item = CheckItem.of("frame size", Status.FAIL, 0.0, size, Message("check.l.size"))
            return CheckReport((replace(item, frame=origin),))
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
    return CheckItem.of(
        "focus",
        status,
        ratio,
        Message("check.m.focus", {"focus": focus, "ratio": ratio, "reference": reference}),
        Message("check.l.focus", {"warn": limits.focus_warn_ratio, "fail": limits.focus_fail_ratio}),
    )


def _exposure_items(now: ExposureStats, ref: ExposureStats, limits: CheckLimits) -> list[CheckItem]:
    moved = abs(now.mean - ref.mean)
    clipped = {"warn": limits.clipped_warn_pct, "fail": limits.clipped_fail_pct}
    clip_limits = Message("check.l.clipped", clipped)
    items = [
        CheckItem.of(
            "exposure mean",
            _graded(moved, limits.mean_warn, limits.mean_fail),
            moved,
            Message("check.m.exposure", {"mean": now.mean, "ref": ref.mean, "diff": now.mean - ref.mean}),
            Message("check.l.exposure", {"warn": limits.mean_warn, "fail": limits.mean_fail}),
        )
    ]
    for name, pct, ref_pct in (
        ("highlights", now.highlights_pct, ref.highlights_pct),
        ("shadows", now.shadows_pct, ref.shadows_pct),
    ):
        grown = max(0.0, pct - ref_pct)
        items.append(
            CheckItem.of(
                f"{name} clipped",
                _graded(grown, limits.clipped_warn_pct, limits.clipped_fail_pct),
                grown,
                Message("check.m.clipped", {"pct": pct, "ref": ref_pct}),
                clip_limits,
            )
        )
    return items


def _pose_items(pose: Pose, limits: CheckLimits) -> list[CheckItem]:
    if pose.matches < limits.min_matches:
        return [
            CheckItem.of(
                "pose",
                Status.FAIL,
                float(pose.matches),
                Message("check.m.pose_lost", {"matches": pose.matches}),
                Message("check.l.pose_lost", {"min": limits.min_matches}),
            )
        ]
    zoom_pct = abs(pose.scale - 1.0) * 100.0
    n = pose.matches
    rotation = abs(pose.rotation_deg)
    return [
        CheckItem.of(
            "pose shift",
            _graded(pose.shift_px, limits.shift_warn_px, limits.shift_fail_px),
            pose.shift_px,
            Message("check.m.shift", {"shift": pose.shift_px, "dx": pose.dx, "dy": pose.dy, "matches": n}),
            Message("check.l.shift", {"warn": limits.shift_warn_px, "fail": limits.shift_fail_px}),
        ),
        CheckItem.of(
            "pose rotation",
            _graded(rotation, limits.rotation_warn_deg, limits.rotation_fail_deg),
            rotation,
            Message("check.m.rotation", {"deg": pose.rotation_deg}),
            Message("check.l.rotation", {"warn": limits.rotation_warn_deg, "fail": limits.rotation_fail_deg}),
        ),
        CheckItem.of(
            "pose scale",
            _graded(zoom_pct, limits.scale_warn_pct, limits.scale_fail_pct),
            zoom_pct,
            Message("check.m.scale", {"scale": pose.scale, "pct": (pose.scale - 1.0) * 100.0}),
            Message("check.l.scale", {"warn": limits.scale_warn_pct, "fail": limits.scale_fail_pct}),
        ),
    ]
