"""Decision rules as tables: thresholds per class, ignore list, ROI, px vs mm, reasons and their order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from edge.errors import LinesideError
from edge.judge.inspection import Detection, Verdict
from edge.judge.rules import (
    RoiConfig,
    RulesConfig,
    Scale,
    check_rules,
    decide,
    near_threshold,
    rules_from_card,
)
from edge.modelstore.card import InputSpec, ModelCard, Thresholds, TrainingInfo

CLASSES = ("short", "scratch", "dust")
FRAME = (480, 640, 3)


def det(name: str, conf: float, centre: tuple[float, float], size: tuple[float, float]) -> Detection:
    """A detection given by centre and size, in frame pixels."""
    (cx, cy), (w, h) = centre, size
    box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return Detection(class_id=CLASSES.index(name), class_name=name, confidence=conf, box=box)


@dataclass
class Case:
    detections: list[Detection]
    reasons: list[str]
    rules: dict[str, Any] = field(default_factory=dict)
    roi: dict[str, Any] | None = None
    mm_per_px: float | None = None


CASES = {
    "nothing found": Case([], ["ACCEPT: no defect >= threshold in ROI"]),
    "one defect, px": Case(
        [det("short", 0.91, (212, 340), (38, 20))], ["REJECT: short 0.91 at (212,340) px, 38x20 px, >= 0.50"]
    ),
    "confidence exactly at the threshold rejects": Case(
        [det("short", 0.5, (100, 100), (10, 10))], ["REJECT: short 0.50 at (100,100) px, 10x10 px, >= 0.50"]
    ),
    "below the default threshold": Case(
        [det("short", 0.49, (100, 100), (10, 10))],
        ["ACCEPT: no defect >= threshold in ROI (1 below threshold)"],
    ),
    "per-class threshold": Case(
        [det("scratch", 0.7, (100, 100), (10, 10)), det("short", 0.7, (300, 100), (10, 10))],
        ["REJECT: short 0.70 at (300,100) px, 10x10 px, >= 0.50"],
        rules={"classes": {"scratch": {"min_confidence": 0.8}}},
    ),
    "size is the longer side, px": Case(
        [det("short", 0.9, (100, 100), (30, 4)), det("short", 0.9, (300, 100), (29, 29))],
        ["REJECT: short 0.90 at (100,100) px, 30x4 px, >= 0.50"],
        rules={"default": {"min_size_px": 30}},
    ),
    "a class override keeps the default's other fields": Case(
        [det("scratch", 0.7, (100, 100), (20, 20))],
        ["ACCEPT: no defect >= threshold in ROI (1 too small)"],
        rules={"default": {"min_size_px": 30}, "classes": {"scratch": {"min_confidence": 0.6}}},
    ),
    "ignored class never rejects": Case(
        [det("dust", 0.99, (100, 100), (50, 50))],
        ["ACCEPT: no defect >= threshold in ROI (1 ignored)"],
        rules={"ignore": ["dust"]},
    ),
    "ROI rect: centre outside": Case(
        [det("short", 0.9, (50, 50), (200, 200))],
        ["ACCEPT: no defect >= threshold in ROI (1 outside ROI)"],
        roi={"rect": [100, 100, 200, 100]},
    ),
    "ROI rect: centre on the edge counts as inside": Case(
        [det("short", 0.9, (100, 150), (10, 10))],
        ["REJECT: short 0.90 at (100,150) px, 10x10 px, >= 0.50"],
        roi={"rect": [100, 100, 200, 100]},
    ),
    "ROI polygon": Case(
        [det("short", 0.9, (120, 110), (10, 10)), det("scratch", 0.8, (190, 190), (10, 10))],
        ["REJECT: short 0.90 at (120,110) px, 10x10 px, >= 0.50"],
        roi={"polygon": [[100, 100], [200, 100], [100, 200]]},  # (190, 190) is past the hypotenuse
    ),
    "the accept reason counts what was passed over": Case(
        [
            det("short", 0.3, (100, 100), (10, 10)),
            det("scratch", 0.2, (150, 150), (10, 10)),
            det("short", 0.9, (600, 400), (10, 10)),
        ],
        ["ACCEPT: no defect >= threshold in ROI (2 below threshold, 1 outside ROI)"],
        roi={"rect": [0, 0, 320, 240]},
    ),
    "with a scale, reasons are in mm": Case(
        [det("scratch", 0.91, (410, 125), (32, 11))],
        ["REJECT: scratch 0.91 at (41.0,12.5) mm, 3.2x1.1 mm, >= 0.50"],
        rules={"default": {"min_size_mm": 3.0}},
        mm_per_px=0.1,
    ),
    "with a scale, the mm minimum replaces the px one": Case(
        [det("scratch", 0.91, (410, 125), (29, 11))],
        ["ACCEPT: no defect >= threshold in ROI (1 too small)"],
        rules={"default": {"min_size_mm": 3.0, "min_size_px": 10}},
        mm_per_px=0.1,
    ),
    "with a scale but no mm minimum, the px minimum applies": Case(
        [det("scratch", 0.91, (410, 125), (29, 11))],
        ["REJECT: scratch 0.91 at (41.0,12.5) mm, 2.9x1.1 mm, >= 0.50"],
        rules={"default": {"min_size_px": 20}},
        mm_per_px=0.1,
    ),
    "without a scale, an mm minimum falls back to the px one": Case(
        [det("scratch", 0.91, (410, 125), (29, 11))],
        ["ACCEPT: no defect >= threshold in ROI (1 too small)"],
        rules={"default": {"min_size_mm": 1.0, "min_size_px": 30}},
    ),
    "worst first: confidence, then size": Case(
        [
            det("scratch", 0.6, (100, 100), (10, 10)),
            det("short", 0.9, (200, 100), (10, 10)),
            det("scratch", 0.9, (300, 100), (20, 10)),
        ],
        [
            "REJECT: scratch 0.90 at (300,100) px, 20x10 px, >= 0.50",
            "REJECT: short 0.90 at (200,100) px, 10x10 px, >= 0.50",
            "REJECT: scratch 0.60 at (100,100) px, 10x10 px, >= 0.50",
        ],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision_table(case: Case):
    rules = RulesConfig.model_validate(case.rules)
    roi = RoiConfig.model_validate(case.roi) if case.roi is not None else None
    scale = Scale(case.mm_per_px) if case.mm_per_px is not None else None
    decision = decide(case.detections, FRAME, rules, roi, CLASSES, scale)
    assert list(decision.reasons) == case.reasons
    expected = Verdict.REJECT if case.reasons[0].startswith("REJECT") else Verdict.ACCEPT
    assert decision.verdict is expected


def test_reject_carries_the_worst_detection():
    detections = [det("scratch", 0.6, (100, 100), (10, 10)), det("short", 0.8, (200, 100), (10, 10))]
    decision = decide(detections, FRAME, RulesConfig(), None, CLASSES)
    assert (decision.top_class_id, decision.top_confidence) == (0, 0.8)


def test_accept_carries_no_deciding_detection():
    decision = decide([det("short", 0.2, (100, 100), (10, 10))], FRAME, RulesConfig(), None, CLASSES)
    assert (decision.verdict, decision.top_class_id, decision.top_confidence) == (Verdict.ACCEPT, None, 0.0)


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        ({"classes": {"scrach": {"min_confidence": 0.6}}}, "rules.classes: class 'scrach'"),
        ({"ignore": ["dirt"]}, "rules.ignore: class 'dirt'"),
    ],
)
def test_unknown_class_in_the_rules_is_refused(rules, named):
    config = RulesConfig.model_validate(rules)
    with pytest.raises(LinesideError, match=named):
        check_rules(config, CLASSES)
    with pytest.raises(LinesideError, match=named):
        decide([], FRAME, config, None, CLASSES)


def test_a_detection_of_a_class_the_model_lacks_is_refused():
    stranger = Detection(class_id=7, class_name="crack", confidence=0.9, box=(0, 0, 5, 5))
    with pytest.raises(LinesideError, match="'crack' is not a class of the model"):
        decide([stranger], FRAME, RulesConfig(), None, CLASSES)


@pytest.mark.parametrize(
    "roi", [{"rect": [600, 0, 100, 100]}, {"polygon": [[0, 0], [700, 0], [0, 100]]}], ids=["rect", "polygon"]
)
def test_roi_reaching_outside_the_frame_is_refused(roi):
    with pytest.raises(LinesideError, match="outside the 640x480 frame"):
        decide([], FRAME, RulesConfig(), RoiConfig.model_validate(roi), CLASSES)


@pytest.mark.parametrize("shape", [(480,), (0, 640, 3), (480, 640, 3, 1)])
def test_a_bad_frame_shape_is_refused(shape):
    with pytest.raises(LinesideError, match="frame shape"):
        decide([], shape, RulesConfig(), None, CLASSES)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rect": [0, 0, 10, 10], "polygon": [[0, 0], [1, 0], [0, 1]]}, "not both"),
        ({"polygon": [[0, 0], [10, 0], [20, 0]]}, "non-zero area"),
        ({"polygon": [[0, 0], [10, 0]]}, "at least 3"),
        ({"rect": [0, 0, 0, 10]}, "width, height > 0"),
        ({"rect": [0, 0, 10, 10], "min_overlap": 0.5}, "Extra inputs"),
    ],
)
def test_invalid_roi_config_is_refused(raw, message):
    with pytest.raises(ValidationError, match=message):
        RoiConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"default": {"min_confidence": 1.5}}, "less than or equal to 1"),
        ({"default": {"min_size_px": -1}}, "greater than or equal to 0"),
        ({"classes": {"dust": {}}, "ignore": ["dust"]}, "both ignored and given a rule"),
        ({"thresholds": {}}, "Extra inputs"),
    ],
)
def test_invalid_rules_config_is_refused(raw, message):
    with pytest.raises(ValidationError, match=message):
        RulesConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("confidence", "margin", "expected"),
    [(0.45, 0.1, True), (0.40, 0.1, True), (0.35, 0.1, False), (0.35, 0.2, True), (0.5, 0.1, False)],
)
def test_near_threshold_is_just_below_the_class_threshold(confidence, margin, expected):
    detections = [det("short", confidence, (100, 100), (10, 10))]
    assert near_threshold(detections, RulesConfig(), margin=margin) is expected


def test_near_threshold_uses_per_class_thresholds_and_skips_ignored_classes():
    rules = RulesConfig.model_validate({"classes": {"scratch": {"min_confidence": 0.8}}, "ignore": ["dust"]})
    assert near_threshold([det("scratch", 0.75, (1, 1), (1, 1))], rules)
    assert not near_threshold([det("short", 0.75, (1, 1), (1, 1))], rules)  # already rejecting at 0.5
    assert not near_threshold([det("dust", 0.45, (1, 1), (1, 1))], rules)


@pytest.mark.parametrize("mm_per_px", [0.0, -0.1, float("nan"), float("inf")])
def test_scale_must_be_positive_and_finite(mm_per_px):
    with pytest.raises(ValueError, match="mm_per_px"):
        Scale(mm_per_px)


def test_rules_from_card_use_its_per_class_thresholds():
    card = ModelCard(
        name="m",
        version="1",
        sha256="0" * 64,
        input=InputSpec(width=64, height=64),
        classes=CLASSES,
        thresholds=Thresholds(per_class={"scratch": 0.8, "short": 0.3}),
        training=TrainingInfo(data_fingerprint="x", code_version="tests"),
    )
    rules = rules_from_card(card)
    assert [rules.rule_for(name).min_confidence for name in CLASSES] == [0.3, 0.8, 0.5]
    detections = [det("scratch", 0.7, (100, 100), (10, 10)), det("short", 0.35, (300, 100), (10, 10))]
    decision = decide(detections, FRAME, rules, None, CLASSES)
    assert decision.reasons == ("REJECT: short 0.35 at (300,100) px, 10x10 px, >= 0.30",)
