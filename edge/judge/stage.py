"""One stage of a recipe's judgement and what it found: its verdict, score, threshold, margin and heat map.

Every kind (detect, classify, anomaly) answers with a `StageResult`; `edge/judge/chain.py` combines them.
The JSON form (no pixels) goes into the inspection's result and its record; the heat map travels beside
the frame to the recorder and the status page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.judge.inspection import Decision, Detection, Verdict

# Display form of a heat map: uint8, 0 up to SHOWN_FROM of the stage's pixel threshold (a good part's
# patches are never at distance 0: without a floor the whole part would glow), 128 at the threshold, 255
# at (2 - SHOWN_FROM) times it.
HEAT_AT_THRESHOLD = 128
SHOWN_FROM = 0.6


@dataclass(frozen=True)
class StageResult:
    """What one stage (one model) said about the part."""

    stage: str  # the stage's name in reasons and records: detector, classifier, anomaly, or configured
    kind: str  # detect, classify, anomaly
    model: dict[str, str]  # name, version, sha256
    decision: Decision  # this stage alone; class ids are the chain's
    score: float | None = None  # detect: the top confidence; classify: defect probability; anomaly: score
    threshold: float | None = None
    detections: tuple[Detection, ...] = ()
    hottest: tuple[float, float] | None = None  # frame px
    area_px: float | None = None  # anomaly: frame px at or above the pixel threshold, inside the ROI
    area_mm2: float | None = None
    heatmap: npt.NDArray[np.uint8] | None = field(default=None, repr=False, compare=False)
    timings_ms: dict[str, float] = field(default_factory=dict)
    near_threshold: bool = False

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    @property
    def margin(self) -> float | None:
        """Score minus threshold: how far past (> 0) or short of (< 0) rejecting the part this stage was."""
        if self.score is None or self.threshold is None:
            return None
        return self.score - self.threshold

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "stage": self.stage,
            "kind": self.kind,
            "model": dict(self.model),
            "verdict": self.decision.verdict.value,
            "error": self.decision.error.name if self.decision.error.value else None,
            "score": rounded(self.score),
            "threshold": rounded(self.threshold),
            "margin": rounded(self.margin),
            "reasons": list(self.decision.reasons),
            "hottest": None if self.hottest is None else [round(v, 1) for v in self.hottest],
            "area_px": None if self.area_px is None else round(self.area_px, 1),
            "area_mm2": None if self.area_mm2 is None else round(self.area_mm2, 3),
            "detections": len(self.detections),
            "near_threshold": self.near_threshold,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def display_heatmap(heat: npt.NDArray[np.float32], level: float) -> npt.NDArray[np.uint8]:
    """The heat map as uint8 for records and the status page: `level` (the threshold) at 128, nothing
    below SHOWN_FROM of it."""
    if level <= 0:
        return np.zeros(heat.shape, np.uint8)
    floor = SHOWN_FROM * level
    # in place on one float32 temporary: this runs for every part, between the model and the verdict
    scaled = np.subtract(heat, np.float32(floor), dtype=np.float32)
    scaled *= np.float32(HEAT_AT_THRESHOLD / (level - floor))
    np.clip(scaled, 0, 255, out=scaled)
    shown: npt.NDArray[np.uint8] = scaled.astype(np.uint8)
    return shown
