"""The classify and anomaly stages: from a model's score and heat map to this stage's verdict and reasons.

classify rejects at a defect score (1 - P(good)) at or above its threshold; anomaly at an anomaly score at
or above its threshold *and* an area of the heat map at or above the pixel threshold of at least the
minimum area (px, or mm^2 once calibrated), both counted inside the region of interest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.geometry import Scale
from edge.judge.inspection import Decision, Verdict
from edge.judge.rules import RoiConfig
from edge.judge.scoremap import MapOutput, ScoreMapModel
from edge.judge.stage import StageResult, display_heatmap
from edge.modelstore.card import ModelCard

NEAR_THRESHOLD = 0.9  # a score at 90 % of its threshold or more is "near": such frames are kept


@dataclass(frozen=True)
class MapSettings:
    """A recipe's overrides of the card's thresholds for one classify or anomaly stage."""

    threshold: float | None = None
    pixel: float | None = None
    min_area_px: float | None = None
    min_area_mm2: float | None = None


@dataclass(frozen=True)
class MapStage:
    """A classify or anomaly model with its thresholds, region of interest and (optional) mm scale."""

    name: str
    model: ScoreMapModel
    settings: MapSettings
    roi: RoiConfig
    first_class_id: int  # this stage's first defect class in the chain's class list
    # The ROI as a heat-map mask, per frame size: the same for every part of a station.
    _masks: dict[tuple[int, int], npt.NDArray[np.bool_]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def card(self) -> ModelCard:
        return self.model.card

    @property
    def threshold(self) -> float:
        chosen = self.settings.threshold
        card_score = self.card.thresholds.score
        assert card_score is not None  # the card's own validator requires it for these kinds
        return card_score if chosen is None else chosen

    def area_rule(self, scale: Scale | None) -> tuple[float, str]:
        """An anomaly stage's minimum area and its unit: mm2 once calibrated and set in mm2, else px."""
        settings = self.settings
        if settings.min_area_mm2 is not None and scale is not None:
            return settings.min_area_mm2, "mm2"
        if settings.min_area_px is not None:
            return settings.min_area_px, "px"
        return self.card.thresholds.min_area_px, "px"

    def judge(self, frame: npt.NDArray[np.uint8], scale: Scale | None) -> StageResult:
        """This stage's verdict on `frame`; InferenceError and LinesideError propagate to the chain."""
        output = self.model.run(frame)
        size = (frame.shape[1], frame.shape[0])
        heat = output.heatmap
        if self.roi.rect is not None or self.roi.polygon is not None:
            inside = self._masks.get(size)
            if inside is None or inside.shape != heat.shape:
                inside = self._masks[size] = _roi_mask(output, self.roi, *size)
            heat = np.where(inside, heat, np.float32(0.0))
        row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
        hottest = output.to_frame(float(col), float(row))
        if self.card.task == "classify":
            return self._classify(output, heat, hottest)
        return self._anomaly(output, heat, hottest, scale)

    def _result(  # noqa: PLR0917 (the two kinds' one shared constructor)
        self,
        decision: Decision,
        score: float,
        threshold: float,
        hottest: tuple[float, float],
        heatmap: npt.NDArray[np.uint8],
        output: MapOutput,
        area_px: float | None = None,
        area_mm2: float | None = None,
    ) -> StageResult:
        card = self.card
        return StageResult(
            stage=self.name,
            kind=card.task,
            model={"name": card.name, "version": card.version, "sha256": card.sha256},
            decision=decision,
            score=score,
            threshold=threshold,
            hottest=hottest,
            area_px=area_px,
            area_mm2=area_mm2,
            heatmap=heatmap,
            timings_ms=output.timings_ms,
            near_threshold=NEAR_THRESHOLD * threshold <= score < threshold,
        )

    def _classify(
        self, output: MapOutput, heat: npt.NDArray[np.float32], hottest: tuple[float, float]
    ) -> StageResult:
        score, threshold = output.score, self.threshold
        defect_scores = output.class_scores[1:]
        worst = int(np.argmax(defect_scores))
        named = "" if len(defect_scores) == 1 else f", {self.card.classes[worst + 1]}"
        where = f"hottest at ({hottest[0]:.0f},{hottest[1]:.0f}) px"
        if score >= threshold:
            reason = f"REJECT: defect score {score:.2f} >= {threshold:.2f} ({self.name}{named}), {where}"
            decision = Decision(
                Verdict.REJECT, (reason,), top_class_id=self.first_class_id + worst, top_confidence=score
            )
        else:
            reason = f"ACCEPT: defect score {score:.2f} < {threshold:.2f} ({self.name})"
            decision = Decision(Verdict.ACCEPT, (reason,))
        peak = float(heat.max())
        shown = display_heatmap(heat, peak / 2.0 if peak > 0 else 1.0)  # relative: a CAM has no units
        return self._result(decision, score, threshold, hottest, shown, output)

    def _anomaly(
        self,
        output: MapOutput,
        heat: npt.NDArray[np.float32],
        hottest: tuple[float, float],
        scale: Scale | None,
    ) -> StageResult:
        card, settings = self.card, self.settings
        threshold = self.threshold
        pixel = settings.pixel if settings.pixel is not None else card.thresholds.pixel
        assert pixel is not None  # required by the card for task anomaly
        score = float(heat.max())  # inside the ROI and the frame (the letterbox border never counts)
        area_px = float(np.count_nonzero(heat >= pixel)) * output.frame_px_per_map_px()
        area_mm2 = None if scale is None else area_px * scale.mm_per_px**2
        minimum, unit = self.area_rule(scale)
        area = area_mm2 if unit == "mm2" and area_mm2 is not None else area_px
        where = f"hottest at ({hottest[0]:.0f},{hottest[1]:.0f}) px"
        sized = f"area {area:.0f} {unit} >= {minimum:.0f} {unit}"
        if score >= threshold and area >= minimum and area > 0:
            reason = f"REJECT: anomaly score {score:.2f} >= {threshold:.2f} ({self.name}), {sized}, {where}"
            decision = Decision(
                Verdict.REJECT,
                (reason,),
                top_class_id=self.first_class_id,
                top_confidence=_robot_score(score, threshold),
            )
        elif score >= threshold:
            small = f"area {area:.0f} {unit} < {minimum:.0f} {unit}"
            reason = f"ACCEPT: anomaly score {score:.2f} >= {threshold:.2f} but {small} ({self.name})"
            decision = Decision(Verdict.ACCEPT, (reason,))
        else:
            decision = Decision(
                Verdict.ACCEPT, (f"ACCEPT: anomaly score {score:.2f} < {threshold:.2f} ({self.name})",)
            )
        shown = display_heatmap(heat, pixel)
        return self._result(decision, score, threshold, hottest, shown, output, area_px, area_mm2)


def _robot_score(score: float, threshold: float) -> float:
    """The anomaly score as the robot's 0..1 SCORE: 0.5 at the threshold, 1.0 at twice it (robot-link.md)."""
    return float(min(1.0, 0.5 * score / threshold)) if threshold > 0 else 1.0


def _roi_mask(
    output: MapOutput, roi: RoiConfig, frame_width: int, frame_height: int
) -> npt.NDArray[np.bool_]:
    """Which heat-map pixels lie inside the region of interest (the stage asks only when there is one)."""
    heat = output.heatmap
    roi.check_within(frame_width, frame_height)
    rows, cols = np.indices(heat.shape, dtype=np.float64)
    ratio = output.transform.ratio
    points = np.stack([(cols.ravel() + 0.5) / ratio - 0.5, (rows.ravel() + 0.5) / ratio - 0.5], axis=1)
    return np.asarray(roi.contains(points), dtype=bool).reshape(heat.shape)
