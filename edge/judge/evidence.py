"""Why a part got its verdict, as language-neutral data: the deciding stage, the rule that fired with its
margin, the runner-up findings below threshold, and each stage's score.

Codes and numbers only (rule codes, class, score, threshold, margin, units, box or hottest point), never
sentences, so that a record re-renders in any language. Built in the inference worker after the part's
result has left (it never delays or changes a verdict); `edge/records/` keeps it and draws its crops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from edge.errors import ErrorCode
from edge.geometry import Scale
from edge.judge.chain import deciding_stage
from edge.judge.inspection import Decision, Detection, Verdict
from edge.judge.rules import measure_size
from edge.judge.stage import StageResult

if TYPE_CHECKING:  # the stages bring onnxruntime and OpenCV: the recorder and alarms workers need neither
    from edge.judge.detectstage import DetectStage
    from edge.judge.mapstage import MapStage

EVIDENCE_VERSION = 1
RUNNER_UPS = 5  # findings below threshold kept per part, closest to rejecting first
MORE_FIRED = 5  # rejecting findings kept beside the deciding one

Finding = dict[str, Any]


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def build_evidence(
    stages: Sequence[DetectStage | MapStage],
    results: Sequence[StageResult],
    decision: Decision,
    scale: Scale | None,
    frame_shape: Sequence[int],
) -> dict[str, Any]:
    """The evidence of one judged frame; `stages` and `results` in the recipe's order."""
    findings: list[Finding] = []
    for stage, result in zip(stages, results, strict=True):
        findings.extend(_stage_findings(stage, result, scale))
    fired = sorted(
        (f for f in findings if f["code"].endswith(".reject")),
        key=lambda f: (-(f.get("score") or 0.0), -(f.get("size") or 0.0)),
    )
    below = sorted(
        (f for f in findings if not f["code"].endswith(".reject") and not f["code"].startswith("fault.")),
        key=_closeness,
        reverse=True,
    )
    faults = [f for f in findings if f["code"].startswith("fault.")]
    decider = deciding_stage(results) if results else None
    rule: Finding | None = None
    if decision.verdict is Verdict.FAULT:
        own = (f for f in faults if decider is not None and f["stage"] == decider.stage)
        rule = next(own, None) or fault_finding(decision, None)
    elif decision.verdict is Verdict.REJECT and decider is not None:
        rule = next((f for f in fired if f["stage"] == decider.stage), None)
    evidence: dict[str, Any] = {
        "v": EVIDENCE_VERSION,
        "verdict": decision.verdict.value,
        "deciding_stage": None if decider is None or decision.verdict is Verdict.ACCEPT else decider.stage,
        "deciding_kind": None if decider is None or decision.verdict is Verdict.ACCEPT else decider.kind,
        "rule": rule,
        "fired": [f for f in fired if f is not rule][:MORE_FIRED],
        "runner_ups": below[:RUNNER_UPS],
        "stages": [_stage_summary(r) for r in results],
        "near_threshold": any(r.near_threshold for r in results),
        "frame": [int(frame_shape[1]), int(frame_shape[0])],
        "calibrated": scale is not None,
    }
    if scale is not None:
        evidence["mm_per_px"] = round(scale.mm_per_px, 6)
    return evidence


def _closeness(finding: Finding) -> float:
    """How near rejecting a finding came, comparable across stages: its margin as a share of its threshold
    (a detector's confidence and an anomaly distance have different scales)."""
    margin, threshold = finding.get("margin"), finding.get("threshold")
    if margin is None:
        return -math.inf
    return float(margin) / float(threshold) if threshold else float(margin)


def fault_evidence(error_code: int, detail: str) -> dict[str, Any]:
    """The evidence of a FAULT decided without a judged frame (camera, timeout, worker, shutdown...)."""
    try:
        kind = ErrorCode(error_code).kind
    except ValueError:
        kind = "unknown"
    return {
        "v": EVIDENCE_VERSION,
        "verdict": Verdict.FAULT.value,
        "deciding_stage": None,
        "deciding_kind": None,
        "rule": _fault(None, int(error_code), kind, detail),
        "fired": [],
        "runner_ups": [],
        "stages": [],
        "near_threshold": False,
    }


def fault_finding(decision: Decision, stage: str | None) -> Finding:
    """A stage's (or the whole part's) FAULT as a finding: its error code, kind and reason."""
    detail = decision.reasons[0] if decision.reasons else ""
    return _fault(stage or None, int(decision.error), decision.error.kind, detail)


def _fault(stage: str | None, error_code: int, kind: str, detail: str) -> Finding:
    return {
        "stage": stage,
        "code": f"fault.{kind}",
        "error_code": error_code,
        "kind": kind,
        "detail": detail,
    }


def _stage_summary(result: StageResult) -> dict[str, Any]:
    return {
        "stage": result.stage,
        "kind": result.kind,
        "verdict": result.verdict.value,
        "score": _r(result.score),
        "threshold": _r(result.threshold),
        "margin": _r(result.margin),
        "near_threshold": result.near_threshold,
    }


def _stage_findings(stage: DetectStage | MapStage, result: StageResult, scale: Scale | None) -> list[Finding]:
    if result.verdict is Verdict.FAULT:
        return [fault_finding(result.decision, result.stage)]
    if result.kind == "detect":
        return _detect_findings(cast("DetectStage", stage), result.detections, scale)
    return [_map_finding(cast("MapStage", stage), result, scale)]


def _detect_findings(
    stage: DetectStage, detections: Sequence[Detection], scale: Scale | None
) -> list[Finding]:
    """One finding per detection the rules looked at, coded as `decide` (rules.py) judged it."""
    counted = [d for d in detections if d.class_name not in stage.rules.ignore]
    if not counted:
        return []
    centres = np.array([d.centre for d in counted], dtype=np.float64).reshape(-1, 2)
    inside = stage.roi.contains(centres)
    findings = []
    for det, in_roi in zip(counted, inside, strict=True):
        rule = stage.rules.rule_for(det.class_name)
        size, limit, unit = measure_size(det, rule, scale)
        if not in_roi:
            code = "detect.outside_roi"
        elif det.confidence < rule.min_confidence:
            code = "detect.below_confidence"
        elif size < limit:
            code = "detect.too_small"
        else:
            code = "detect.reject"
        finding: Finding = {
            "stage": stage.name,
            "code": code,
            "class": det.class_name,
            "class_id": det.class_id + stage.first_class_id,
            "score": _r(det.confidence),
            "threshold": _r(rule.min_confidence),
            "margin": _r(det.confidence - rule.min_confidence),
            "size": _r(size, 3),
            "size_limit": _r(limit, 3),
            "size_margin": _r(size - limit, 3),
            "units": unit,
            "box": [round(v, 1) for v in det.box],
        }
        if scale is not None:
            finding["centre_mm"] = [round(v, 2) for v in scale.point_to_mm(*det.centre)]
        findings.append(finding)
    return findings


def _map_finding(stage: MapStage, result: StageResult, scale: Scale | None) -> Finding:
    """A classify or anomaly stage's one finding: its score against its threshold (and area, anomaly)."""
    rejected = result.verdict is Verdict.REJECT
    finding: Finding = {
        "stage": stage.name,
        "code": f"{result.kind}.{'reject' if rejected else 'below_threshold'}",
        "class": None,
        "class_id": result.decision.top_class_id,
        "score": _r(result.score),
        "threshold": _r(result.threshold),
        "margin": _r(result.margin),
        "hottest": None if result.hottest is None else [round(v, 1) for v in result.hottest],
    }
    if rejected and result.decision.top_class_id is not None:
        offset = result.decision.top_class_id - stage.first_class_id
        names = stage.card.classes[1:] if result.kind == "classify" else stage.card.classes
        finding["class"] = names[offset] if 0 <= offset < len(names) else None
    if result.kind == "anomaly":
        minimum, unit = stage.area_rule(scale)
        area = result.area_mm2 if unit == "mm2" else result.area_px
        finding.update(area=_r(area, 3), area_limit=_r(minimum, 3), units=unit)
        finding["area_margin"] = None if area is None else _r(area - minimum, 3)
        margin = result.margin
        if not rejected and margin is not None and margin >= 0:
            finding["code"] = "anomaly.area_too_small"  # hot enough, but too small a patch
    return finding
