"""The stored record of a finalised part, from the robot link's ledger event: what the recorder writes and
what the alarms worker charts, in one place. Light on purpose (no image code, no models): the alarms worker
imports it and nothing of the recorder's."""

from __future__ import annotations

import time
from typing import Any

from edge.errors import ErrorCode
from edge.judge.evidence import fault_evidence
from edge.judge.inspection import Detection, Verdict
from edge.records.model import InspectionRecord
from edge.runtime.messages import LedgerEvent


def record_from_event(event: LedgerEvent) -> InspectionRecord:
    """The stored record of a finalised part."""
    trigger, result = event.trigger, event.result
    verdict = event.verdict or Verdict.FAULT
    error = event.error_code if verdict is Verdict.FAULT else ErrorCode.NONE
    if verdict is Verdict.FAULT and error is ErrorCode.NONE:
        error = ErrorCode.INTERNAL
    latency = dict(result.timings_ms) if result is not None else {}
    latency["total"] = round(event.latency_ms, 3)
    detections: tuple[Detection, ...] = result.parsed_detections() if result is not None else ()
    return InspectionRecord(
        boot_id=trigger.boot_id,
        seq=trigger.seq,
        part_id=trigger.part_id,
        recipe=(result.recipe_name if result is not None and result.recipe_name else str(trigger.recipe)),
        verdict=verdict,
        reasons=event.reasons or ("FAULT (internal): no reason given",),
        error_code=int(error),
        detections=detections,
        model_name=result.model.name if result is not None else "",
        model_version=result.model.version if result is not None else "",
        model_sha256=result.model.sha256 if result is not None else "",
        triggered_at=trigger.wall_trigger,
        decided_at=event.wall_decided or time.time(),
        latency_ms=latency,
        near_threshold=bool(result.near_threshold) if result is not None else False,
        late=event.late,
        stages=tuple(result.stages) if result is not None else (),
        evidence=_evidence_of(event, verdict, error),
    )


def _evidence_of(event: LedgerEvent, verdict: Verdict, error: ErrorCode) -> dict[str, Any]:
    """Inference's evidence when the part was judged and it agrees with the final verdict; else, for a FAULT
    decided elsewhere (camera, timeout, worker, shutdown), the fault's own code and reason."""
    result = event.result
    evidence = dict(result.evidence) if result is not None and result.evidence else {}
    if evidence.get("verdict") == verdict.value:
        return evidence
    if verdict is Verdict.FAULT:
        return fault_evidence(int(error), event.reasons[0] if event.reasons else "")
    return {}
