"""A recipe ready to judge frames: model, calibration (undistortion, mm scale, robot plane), ROI, rules.

The line's inference worker and `lineside inspect` judge through this same code. Every known failure
becomes a FAULT decision naming its cause; nothing here turns an error into "no defect".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.errors import ErrorCode, LinesideError
from edge.judge.detector.detector import Detector
from edge.judge.detector.errors import InferenceError, InvalidFrame
from edge.judge.inspection import Decision, Detection, Verdict
from edge.judge.rules import RoiConfig, RulesConfig, check_rules, decide, near_threshold, rules_from_card
from edge.station.calibfile import CalibrationFile, load_calibration
from edge.station.config import RecipeConfig
from edge.station.undistort import Undistorter


@dataclass(frozen=True)
class Inspection:
    """What one frame gave: the decision, the detections behind it and the time each stage took."""

    decision: Decision
    detections: tuple[Detection, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    near_threshold: bool = False


@dataclass(frozen=True)
class Inspector:
    recipe: RecipeConfig
    detector: Detector
    rules: RulesConfig
    roi: RoiConfig
    calibration: CalibrationFile | None
    undistorter: Undistorter | None

    @classmethod
    def load(cls, recipe: RecipeConfig, detector: Detector) -> Inspector:
        """Resolve what the recipe leaves to its calibration file; LinesideError if the recipe cannot work.

        ROI: the recipe's own, else the calibration's. Rules: the recipe's own, else the thresholds chosen
        on this station's golden samples (for this very model), else the model card's defaults.
        """
        origin = str(recipe.calibration)
        calibration = load_calibration(recipe.calibration) if recipe.calibration is not None else None
        roi = recipe.roi
        if "roi" not in recipe.model_fields_set and calibration is not None and calibration.roi is not None:
            roi = calibration.roi.in_pixel_space(calibration.intrinsics_id(), origin)
        if recipe.rules is not None:
            rules = recipe.rules
        elif calibration is not None and calibration.thresholds is not None:
            rules = calibration.thresholds.rules_for(detector.card, origin)
        else:
            rules = rules_from_card(detector.card)
        check_rules(rules, detector.card.classes)
        undistorter = Undistorter.from_calibration(calibration, origin) if calibration is not None else None
        return cls(recipe, detector, rules, roi, calibration, undistorter)

    def inspect(self, image: np.ndarray, conf_floor: float | None = None) -> Inspection:
        """Judge one frame; a FAULT decision (never an exception) for a bad frame, model or calibration."""
        try:
            frame = self.undistorter.apply(image) if self.undistorter is not None else image
            result = self.detector.detect(frame, conf_floor=conf_floor)
        except (InferenceError, InvalidFrame) as exc:
            return Inspection(Decision.fault(exc.error_code, str(exc)))
        except LinesideError as exc:  # the frame is not the size the lens was calibrated for
            return Inspection(Decision.fault(ErrorCode.CALIBRATION, str(exc)))
        try:
            decision = self._decide(result.detections, frame.shape)
        except LinesideError as exc:  # scale or robot plane for another frame size, ROI off the frame
            return Inspection(Decision.fault(ErrorCode.CALIBRATION, str(exc)), result.detections)
        return Inspection(
            decision,
            result.detections,
            result.timings_ms,
            near_threshold(result.detections, self.rules),
        )

    def _decide(self, detections: tuple[Detection, ...], shape: tuple[int, ...]) -> Decision:
        origin = str(self.recipe.calibration)
        cal = self.calibration
        scale = cal.scale_for(shape, origin) if cal is not None else None
        decision = decide(detections, shape, self.rules, self.roi, self.detector.card.classes, scale)
        plane = cal.robot_plane_for(shape, origin) if cal is not None else None
        if plane is None or decision.verdict is not Verdict.REJECT:
            return decision
        # The defect that decided it, in the robot's coordinates, for a robot that picks or marks it.
        worst = min(
            (d for d in detections if d.class_id == decision.top_class_id),
            key=lambda d: abs(d.confidence - decision.top_confidence),
        )
        x, y = plane.to_robot(*worst.centre)
        where = f"robot position of the {worst.class_name}: ({x:.1f}, {y:.1f}) mm"
        return Decision(
            decision.verdict,
            (*decision.reasons, where),
            top_class_id=decision.top_class_id,
            top_confidence=decision.top_confidence,
            robot_position=(round(x, 1), round(y, 1)),
        )
