"""The detect stage: the detector's boxes through the recipe's decision rules (per-class confidence and size,
inside the region of interest), as one stage of a recipe's chain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from edge.geometry import Scale
from edge.judge.detector.detector import Detector
from edge.judge.inspection import Detection, Verdict
from edge.judge.rules import RoiConfig, RulesConfig, decide, near_threshold
from edge.judge.stage import StageResult
from edge.modelstore.card import ModelCard


@dataclass(frozen=True)
class DetectStage:
    """A detector with the rules and region of interest that turn its boxes into a verdict."""

    name: str
    detector: Detector
    rules: RulesConfig
    roi: RoiConfig
    first_class_id: int = 0  # where this detector's classes start in the chain's class list

    @property
    def card(self) -> ModelCard:
        return self.detector.card

    def judge(
        self, frame: npt.NDArray[np.uint8], scale: Scale | None, conf_floor: float | None = None
    ) -> StageResult:
        """This stage's verdict; InferenceError and LinesideError propagate to the chain."""
        result = self.detector.detect(frame, conf_floor=conf_floor)
        decision = decide(result.detections, frame.shape, self.rules, self.roi, self.card.classes, scale)
        card = self.card
        score, threshold = self._score(result.detections, decision.top_class_id)
        hottest = None
        if decision.verdict is Verdict.REJECT:
            hottest = self._worst_centre(result.detections, decision.top_class_id, decision.top_confidence)
        if decision.top_class_id is not None and self.first_class_id:
            decision = replace(decision, top_class_id=decision.top_class_id + self.first_class_id)
        return StageResult(
            stage=self.name,
            kind="detect",
            model={"name": card.name, "version": card.version, "sha256": card.sha256},
            decision=decision,
            score=score,
            threshold=threshold,
            detections=result.detections,
            hottest=hottest,
            timings_ms=result.timings_ms,
            near_threshold=near_threshold(result.detections, self.rules),
        )

    def _score(
        self, detections: tuple[Detection, ...], top_class_id: int | None
    ) -> tuple[float | None, float | None]:
        """The deciding (else the strongest counted) detection's confidence and its class's threshold."""
        counted = [d for d in detections if d.class_name not in self.rules.ignore]
        if top_class_id is not None:
            counted = [d for d in counted if d.class_id == top_class_id] or counted
        if not counted:
            return None, None
        best = max(counted, key=lambda d: d.confidence)
        return best.confidence, self.rules.rule_for(best.class_name).min_confidence

    @staticmethod
    def _worst_centre(
        detections: tuple[Detection, ...], class_id: int | None, confidence: float
    ) -> tuple[float, float] | None:
        candidates = [d for d in detections if d.class_id == class_id]
        if not candidates:
            return None
        return min(candidates, key=lambda d: abs(d.confidence - confidence)).centre
