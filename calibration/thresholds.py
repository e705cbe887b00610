"""`calibrate thresholds`: per-class reject confidences from this station's own golden samples.

The runtime's detector scores every good and defective sample at a low confidence floor (only detections
inside the calibrated ROI count, as at runtime); edge.judge.thresholds picks thresholds that meet the target
escape rate at the lowest overkill. Minimum sizes are not part of the choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from calibration.errors import InputError
from calibration.frames import camera_of, list_images, load_if_present, read_image, runtime_frame
from edge.i18n import Message, say
from edge.judge.detector.detector import Detector
from edge.judge.rules import RoiConfig
from edge.judge.thresholds import LOWEST, Operating, ScoredPart, choose_thresholds
from edge.station.calibfile import CalibrationFile, CameraFrame, update_calibration
from edge.station.calibsections import ThresholdsSection

NAMES_SHOWN = 8  # parts listed behind an escape or overkill figure


@dataclass(frozen=True)
class Proposal:
    """Thresholds proposed for a model on one station's samples, and what they gave there."""

    operating: Operating
    parts: tuple[ScoredPart, ...]
    camera: CameraFrame
    target_escape: float
    model: str
    model_sha256: str

    @property
    def good(self) -> int:
        return sum(not p.defective for p in self.parts)

    @property
    def bad(self) -> int:
        return sum(p.defective for p in self.parts)

    @property
    def reachable(self) -> bool:
        return self.operating.escape_rate <= self.target_escape

    def section(self) -> ThresholdsSection:
        return ThresholdsSection(
            per_class=self.operating.thresholds,
            model=self.model,
            model_sha256=self.model_sha256,
            target_escape=self.target_escape,
            escape_rate=self.operating.escape_rate,
            overkill_rate=self.operating.overkill_rate,
            good_samples=self.good,
            bad_samples=self.bad,
            chosen=datetime.now(timezone.utc).isoformat(),
        )

    def lines(self, lang: str | None = "en") -> list[str]:
        """What a technician reads before confirming: each threshold with the parts behind it, in `lang`
        (None: the locale's)."""
        op = self.operating
        out = [say("calib.thresholds.head", lang, model=self.model, good=self.good, bad=self.bad)]
        for cls, threshold in op.thresholds.items():
            evidence = self._evidence(cls, threshold)
            out.append(say("calib.thresholds.class", lang, cls=cls, threshold=threshold, evidence=evidence))
        escapes = {
            "rate": op.escape_rate,
            "count": len(op.escapes),
            "of": self.bad,
            "names": _names(op.escapes),
        }
        out.append(say("calib.thresholds.escape", lang, **escapes))
        overkills = {
            "rate": op.overkill_rate,
            "count": len(op.overkills),
            "of": self.good,
            "names": _names(op.overkills),
        }
        out.append(say("calib.thresholds.overkill", lang, **overkills))
        if not self.reachable:
            out.append(say("calib.thresholds.unreachable", lang, target=self.target_escape, floor=LOWEST))
        return out

    def _evidence(self, cls: str, threshold: float) -> Message:
        good = [(p.best.get(cls, 0.0), p.name) for p in self.parts if not p.defective]
        caught = sum(p.best.get(cls, 0.0) >= threshold for p in self.parts if p.defective)
        top_score, top_name = max(good)
        return Message("calib.thresholds.evidence", {"caught": caught, "score": top_score, "name": top_name})


def _names(names: tuple[str, ...]) -> Message | str:
    if not names:
        return ""
    shown = ", ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        return Message("calib.thresholds.names_more", {"names": shown, "more": len(names) - NAMES_SHOWN})
    return Message("calib.thresholds.names", {"names": shown})


def score_folder(
    detector: Detector,
    folder: Path,
    defective: bool,
    calibration: CalibrationFile | None,
    camera: CameraFrame | None,
) -> tuple[list[ScoredPart], CameraFrame]:
    """Each image's best confidence per class inside the ROI, on the frame as the runtime sees it.

    Every image must have one frame size (the calibration's, when there is one).
    """
    roi = RoiConfig()
    if calibration is not None and calibration.roi is not None:
        roi = calibration.roi.in_pixel_space(calibration.intrinsics_id())
    parts = []
    for path in list_images(folder):
        image = read_image(path)
        size = camera_of(image)
        if camera is None:
            camera = size
        elif size != camera:
            sizes = {"width": size.width, "height": size.height, "cw": camera.width, "ch": camera.height}
            raise InputError(Message("calib.input.station_size", {"path": path, **sizes}))
        image = runtime_frame(calibration, image, str(path))
        detections = detector.detect(image, conf_floor=LOWEST).detections
        centres = np.array([d.centre for d in detections], dtype=np.float64).reshape(-1, 2)
        inside = [d for d, keep in zip(detections, roi.contains(centres), strict=True) if keep]
        name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
        parts.append(ScoredPart.from_detections(name, defective, inside))
    if camera is None:  # list_images refuses an empty folder; this keeps mypy and readers sure
        raise InputError(Message("calib.input.folder_empty", {"path": folder}))
    return parts, camera


def propose_thresholds(
    detector: Detector, good_dir: Path, bad_dir: Path, calibration_path: Path, target_escape: float = 0.0
) -> Proposal:
    """Score both folders (with the calibration's ROI and frame size, if the file exists) and choose."""
    if not 0.0 <= target_escape <= 1.0:
        raise InputError(Message("calib.input.target_escape", {"value": target_escape}))
    existing = load_if_present(calibration_path)
    camera = existing.camera if existing else None
    good, camera = score_folder(detector, good_dir, False, existing, camera)
    bad, camera = score_folder(detector, bad_dir, True, existing, camera)
    parts = good + bad
    card = detector.card
    operating = choose_thresholds(parts, card.classes, target_escape=target_escape)
    return Proposal(
        operating=operating,
        parts=tuple(parts),
        camera=camera,
        target_escape=target_escape,
        model=f"{card.name} {card.version}",
        model_sha256=card.sha256,
    )


def write_thresholds(calibration_path: Path, proposal: Proposal) -> CalibrationFile:
    """Store the proposal's thresholds (previous file kept as .prev)."""
    return update_calibration(calibration_path, proposal.camera, thresholds=proposal.section())
