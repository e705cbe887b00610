"""The small immutable records that pass between stages: detections, verdicts and stage timings.

Everything here is plain data, validated on construction, and serialisable to JSON so that it can
cross a process boundary unchanged.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from edge.errors import ErrorCode


class Verdict(str, enum.Enum):
    """What the appliance says about one part. FAULT always means reject to the robot."""

    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    FAULT = "FAULT"


@dataclass(frozen=True)
class Detection:
    """One detected defect, its box in original-frame pixels (x1, y1, x2, y2)."""

    class_id: int
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not all(math.isfinite(v) for v in self.box):
            raise ValueError(f"detection box must be finite, got {self.box}")
        if x2 < x1 or y2 < y1:
            raise ValueError(f"detection box must have x2 >= x1 and y2 >= y1, got {self.box}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"detection confidence must be in [0, 1], got {self.confidence}")
        if self.class_id < 0:
            raise ValueError(f"detection class_id must be >= 0, got {self.class_id}")

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.class_name,
            "class_id": self.class_id,
            "confidence": round(self.confidence, 4),
            "box": [round(v, 1) for v in self.box],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Detection:
        box = data["box"]
        return cls(
            class_id=int(data["class_id"]),
            class_name=str(data["class"]),
            confidence=float(data["confidence"]),
            box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        )


@dataclass(frozen=True)
class Decision:
    """A verdict with the plain-language reasons that led to it, and the defect that decided it."""

    verdict: Verdict
    reasons: tuple[str, ...]
    top_class_id: int | None = None
    top_confidence: float = 0.0
    error: ErrorCode = ErrorCode.NONE
    robot_position: tuple[float, float] | None = None  # the deciding defect on the robot plane, mm

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a decision needs at least one reason")
        if (self.verdict is Verdict.FAULT) != (self.error is not ErrorCode.NONE):
            raise ValueError("a FAULT decision needs an error code, and only a FAULT may carry one")

    @classmethod
    def fault(cls, error: ErrorCode, reason: str) -> Decision:
        return cls(Verdict.FAULT, (f"FAULT ({error.kind}): {reason}",), error=error)


@dataclass
class StageTimes:
    """Milliseconds spent in each stage of one inspection, filled in as the part moves along."""

    ms: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, milliseconds: float) -> None:
        self.ms[stage] = round(self.ms.get(stage, 0.0) + milliseconds, 3)
