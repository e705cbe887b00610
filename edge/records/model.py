"""The inspection record: everything the appliance knows about one triggered part, as stored.

Records are immutable values; the store fills in `image_path` and the later annotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from edge.errors import ErrorCode
from edge.judge.inspection import Detection, Verdict


@dataclass(frozen=True)
class InspectionRecord:
    """One inspection, keyed by (boot_id, seq): the robot-link process start and its sequence number."""

    boot_id: int
    seq: int
    part_id: str | None
    recipe: str
    verdict: Verdict
    reasons: tuple[str, ...]
    error_code: int
    detections: tuple[Detection, ...]
    model_name: str
    model_version: str
    model_sha256: str  # "" when no model ran (e.g. the camera was lost)
    triggered_at: float  # wall clock, epoch seconds
    decided_at: float
    latency_ms: dict[str, float] = field(hash=False)  # per stage, plus "total"
    near_threshold: bool
    late: bool  # a result arrived after the part was finalised
    image_path: str | None = None  # relative to the records dir; set by the store
    late_note: str = ""  # what mark_late() learned about the late result(s)
    image_evicted: bool = False  # the image was deleted to stay under the quota
    stages: tuple[dict[str, Any], ...] = ()  # each judge's own verdict, score, threshold, margin, reasons
    # Why the verdict: deciding stage, rule and margin, runner-ups, crops (edge/judge/evidence.py); {} when
    # none was kept (records older than schema 3, or evidence that could not be built).
    evidence: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Coerce a plain string ("REJECT") so that rows and JSON decode to the same value.
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        object.__setattr__(self, "detections", tuple(self.detections))
        if self.boot_id < 0 or self.seq < 0:
            raise ValueError(f"record boot_id and seq must be >= 0, got {self.boot_id}:{self.seq}")
        if not self.reasons:
            raise ValueError(f"record {self.boot_id}:{self.seq} needs at least one reason")
        # Same rule as Decision: only a FAULT carries an error code, and a FAULT always does.
        if (self.verdict is Verdict.FAULT) != (self.error_code != ErrorCode.NONE):
            raise ValueError(
                f"record {self.boot_id}:{self.seq}: verdict {self.verdict.value} "
                f"with error_code {self.error_code} (only a FAULT carries a non-zero error code)"
            )
        for name in ("triggered_at", "decided_at"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"record {self.boot_id}:{self.seq}: {name} must be finite")
        if self.image_path is not None:
            path = PurePosixPath(self.image_path)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"record image_path must be relative to the records dir: {self.image_path}")

    @property
    def key(self) -> tuple[int, int]:
        return (self.boot_id, self.seq)

    def to_json(self) -> dict[str, Any]:
        """A lossless JSON-ready dict; `from_json` gives back an equal record."""
        return {
            "boot_id": self.boot_id,
            "seq": self.seq,
            "part_id": self.part_id,
            "recipe": self.recipe,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "error_code": self.error_code,
            "detections": [detection_to_json(d) for d in self.detections],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "triggered_at": self.triggered_at,
            "decided_at": self.decided_at,
            "latency_ms": dict(self.latency_ms),
            "near_threshold": self.near_threshold,
            "late": self.late,
            "image_path": self.image_path,
            "late_note": self.late_note,
            "image_evicted": self.image_evicted,
            "stages": list(self.stages),
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InspectionRecord:
        return cls(
            boot_id=int(data["boot_id"]),
            seq=int(data["seq"]),
            part_id=None if data["part_id"] is None else str(data["part_id"]),
            recipe=str(data["recipe"]),
            verdict=Verdict(data["verdict"]),
            reasons=tuple(str(r) for r in data["reasons"]),
            error_code=int(data["error_code"]),
            detections=tuple(Detection.from_json(d) for d in data["detections"]),
            model_name=str(data["model_name"]),
            model_version=str(data["model_version"]),
            model_sha256=str(data["model_sha256"]),
            triggered_at=float(data["triggered_at"]),
            decided_at=float(data["decided_at"]),
            latency_ms={str(k): float(v) for k, v in data["latency_ms"].items()},
            near_threshold=bool(data["near_threshold"]),
            late=bool(data["late"]),
            image_path=data.get("image_path"),
            late_note=str(data.get("late_note", "")),
            image_evicted=bool(data.get("image_evicted", False)),
            stages=tuple(data.get("stages", ())),
            evidence=dict(data.get("evidence") or {}),
        )


def detection_to_json(detection: Detection) -> dict[str, Any]:
    """Like Detection.to_json but unrounded, so that a stored record reads back exactly equal."""
    return {
        "class": detection.class_name,
        "class_id": detection.class_id,
        "confidence": detection.confidence,
        "box": list(detection.box),
    }
