"""Decision rules: from detections to ACCEPT or REJECT with the reasons in plain words.

Per class a minimum confidence and a minimum size (mm once calibrated, else px), counted only inside
the region of interest. Invalid inputs raise; a FAULT never comes from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.errors import LinesideError
from edge.geometry import Scale, points_in_polygon, points_in_rect, polygon_area
from edge.judge.inspection import Decision, Detection, Verdict
from edge.modelstore.card import ModelCard

__all__ = [
    "ClassRule",
    "RoiConfig",
    "RulesConfig",
    "Scale",
    "check_rules",
    "decide",
    "measure_size",
    "near_threshold",
    "rules_from_card",
]


class ClassRule(BaseModel):
    """When a detection of one class rejects the part. Its size is the longer side of its box."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="A detection rejects only at this confidence or above."
    )
    min_size_px: float = Field(
        0.0, ge=0.0, description="...and only if its longer box side is at least this many pixels."
    )
    min_size_mm: float | None = Field(
        None,
        ge=0.0,
        description=(
            "Used instead of min_size_px when the station is calibrated (a mm scale is known):"
            " the longer box side in millimetres. Without a scale, min_size_px applies."
        ),
    )


class RulesConfig(BaseModel):
    """Thresholds for a recipe: a default rule, per-class overrides, and classes that never reject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: ClassRule = Field(default_factory=ClassRule, description="Rule for every class not listed.")
    classes: dict[str, ClassRule] = Field(
        default_factory=dict,
        description=(
            "Per class name, the fields that differ from `default`; fields left out are taken from"
            " `default` (so {scratch: {min_confidence: 0.6}} keeps the default sizes)."
        ),
    )
    ignore: list[str] = Field(
        default_factory=list, description="Class names that are reported but never reject a part."
    )

    @model_validator(mode="after")
    def _ignored_classes_have_no_rule(self) -> RulesConfig:
        both = sorted(set(self.ignore) & set(self.classes))
        if both:
            raise ValueError(f"classes {both} are both ignored and given a rule")
        return self

    def rule_for(self, class_name: str) -> ClassRule:
        """The default rule with this class's override fields applied."""
        override = self.classes.get(class_name)
        if override is None:
            return self.default
        return self.default.model_copy(update=override.model_dump(exclude_unset=True))


class RoiConfig(BaseModel):
    """The region of interest in frame pixels: a rectangle, a polygon, or neither (the whole frame).

    A detection counts when the centre of its box lies inside the region (on the edge counts as inside);
    there is no partial-overlap rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rect: tuple[float, float, float, float] | None = Field(
        None, description="[x, y, width, height] of the region, top-left origin, pixels."
    )
    polygon: list[tuple[float, float]] | None = Field(
        None, description="[[x, y], ...] corners of the region in order, at least 3, pixels."
    )

    @field_validator("rect")
    @classmethod
    def _rect_has_area(cls, rect: tuple[float, float, float, float] | None) -> tuple[float, ...] | None:
        if rect is not None and (rect[0] < 0 or rect[1] < 0 or rect[2] <= 0 or rect[3] <= 0):
            raise ValueError(f"rect {list(rect)} needs x, y >= 0 and width, height > 0")
        return rect

    @field_validator("polygon")
    @classmethod
    def _polygon_has_area(cls, polygon: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if polygon is not None and (len(polygon) < 3 or polygon_area(polygon) <= 0.0):
            raise ValueError("polygon needs at least 3 corners enclosing a non-zero area")
        return polygon

    @model_validator(mode="after")
    def _at_most_one_shape(self) -> RoiConfig:
        if self.rect is not None and self.polygon is not None:
            raise ValueError("give rect or polygon, not both")
        return self

    def check_within(self, frame_width: int, frame_height: int) -> None:
        """Raise LinesideError if the region reaches outside a frame of this size."""
        if self.rect is not None:
            x, y, w, h = self.rect
            corners = [(x, y), (x + w, y + h)]
            name = f"roi.rect {list(self.rect)}"
        elif self.polygon is not None:
            corners = list(self.polygon)
            name = "roi.polygon"
        else:
            return
        if any(not (0 <= cx <= frame_width and 0 <= cy <= frame_height) for cx, cy in corners):
            raise LinesideError(f"{name} reaches outside the {frame_width}x{frame_height} frame")

    def contains(self, points: np.ndarray) -> np.ndarray:
        """For (N, 2) frame points, whether each lies in the region."""
        if self.rect is not None:
            return points_in_rect(points, self.rect)
        if self.polygon is not None:
            return points_in_polygon(points, self.polygon)
        return np.ones(len(points), dtype=bool)


@dataclass(frozen=True)
class _Measured:
    """A detection with the rule that applies to it and its size in that rule's unit."""

    detection: Detection
    rule: ClassRule
    size: float
    threshold: float


def rules_from_card(card: ModelCard) -> RulesConfig:
    """Rules from the model card's per-class reject thresholds, for when a recipe gives none.

    Classes the card has no threshold for use the ClassRule defaults; no size minimum, no ignore list.
    """
    per_class = card.thresholds.per_class
    return RulesConfig(classes={name: ClassRule(min_confidence=value) for name, value in per_class.items()})


def check_rules(rules: RulesConfig, class_names: Sequence[str]) -> None:
    """Raise LinesideError naming the first class in the rules that the model does not know."""
    known = set(class_names)
    for field, names in (("rules.classes", list(rules.classes)), ("rules.ignore", rules.ignore)):
        for name in names:
            if name not in known:
                raise LinesideError(
                    f"{field}: class {name!r} is not a class of the model ({', '.join(class_names)})"
                )


def decide(  # noqa: PLR0917 (positional order is the contract the workers use)
    detections: Sequence[Detection],
    frame_shape: Sequence[int],
    rules: RulesConfig,
    roi: RoiConfig | None,
    class_names: Sequence[str],
    scale: Scale | None = None,
) -> Decision:
    """ACCEPT unless a detection in the ROI, of a class not ignored, reaches its class's thresholds.

    REJECT carries one reason per rejecting detection, worst (highest confidence, then largest) first,
    and the worst one's class and confidence. frame_shape is (height, width[, channels]).
    """
    check_rules(rules, class_names)
    frame_height, frame_width = _frame_size(frame_shape)
    roi = roi or RoiConfig()
    roi.check_within(frame_width, frame_height)
    for det in detections:
        if det.class_id >= len(class_names) or class_names[det.class_id] != det.class_name:
            raise LinesideError(
                f"detection class {det.class_id} {det.class_name!r} is not a class of the model"
            )
    centres = np.array([det.centre for det in detections], dtype=np.float64).reshape(-1, 2)
    inside = roi.contains(centres)
    counts = {"below threshold": 0, "too small": 0, "outside ROI": 0, "ignored": 0}
    rejecting: list[_Measured] = []
    for det, in_roi in zip(detections, inside, strict=True):
        if det.class_name in rules.ignore:
            counts["ignored"] += 1
            continue
        if not in_roi:
            counts["outside ROI"] += 1
            continue
        measured = _measure(det, rules.rule_for(det.class_name), scale)
        if det.confidence < measured.rule.min_confidence:
            counts["below threshold"] += 1
        elif measured.size < measured.threshold:
            counts["too small"] += 1
        else:
            rejecting.append(measured)
    if not rejecting:
        notes = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
        reason = "ACCEPT: no defect >= threshold in ROI" + (f" ({notes})" if notes else "")
        return Decision(Verdict.ACCEPT, (reason,))
    rejecting.sort(key=lambda m: (-m.detection.confidence, -m.size))
    worst = rejecting[0].detection
    return Decision(
        Verdict.REJECT,
        tuple(_reject_reason(m, scale) for m in rejecting),
        top_class_id=worst.class_id,
        top_confidence=worst.confidence,
    )


def near_threshold(detections: Sequence[Detection], rules: RulesConfig, margin: float = 0.1) -> bool:
    """True when a detection of a class not ignored has confidence within `margin` below its threshold.

    Such frames are kept for relabelling. Only confidence is compared; ROI and size are not.
    """
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin must be in [0, 1], got {margin}")
    for det in detections:
        if det.class_name in rules.ignore:
            continue
        threshold = rules.rule_for(det.class_name).min_confidence
        if threshold - margin <= det.confidence < threshold:
            return True
    return False


def _frame_size(frame_shape: Sequence[int]) -> tuple[int, int]:
    if len(frame_shape) not in (2, 3) or any(int(d) <= 0 for d in frame_shape[:2]):
        raise LinesideError(f"frame shape {tuple(frame_shape)} is not (height, width[, channels])")
    return int(frame_shape[0]), int(frame_shape[1])


def measure_size(det: Detection, rule: ClassRule, scale: Scale | None) -> tuple[float, float, str]:
    """The detection's size, the rule's minimum and their unit ("mm" or "px"), exactly as `decide` compares
    them (evidence reports its size margin from this, so it can never disagree with the verdict)."""
    measured = _measure(det, rule, scale)
    unit = "mm" if scale is not None and rule.min_size_mm is not None else "px"
    return measured.size, measured.threshold, unit


def _measure(det: Detection, rule: ClassRule, scale: Scale | None) -> _Measured:
    """Size is the longer box side: in mm when calibrated and the rule has a mm minimum, else in px."""
    longer_px = max(det.width, det.height)
    if scale is not None and rule.min_size_mm is not None:
        return _Measured(det, rule, scale.to_mm(longer_px), rule.min_size_mm)
    return _Measured(det, rule, longer_px, rule.min_size_px)


def _reject_reason(measured: _Measured, scale: Scale | None) -> str:
    det = measured.detection
    cx, cy = det.centre
    threshold = f">= {measured.rule.min_confidence:.2f}"
    if scale is None:
        where = f"at ({cx:.0f},{cy:.0f}) px, {det.width:.0f}x{det.height:.0f} px"
    else:
        mx, my = scale.point_to_mm(cx, cy)
        where = f"at ({mx:.1f},{my:.1f}) mm, {scale.to_mm(det.width):.1f}x{scale.to_mm(det.height):.1f} mm"
    return f"REJECT: {det.class_name} {det.confidence:.2f} {where}, {threshold}"
