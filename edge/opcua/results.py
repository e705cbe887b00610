"""One finalised part as an OPC 40100-1 result: its ids, state, times and content (plain values).

Built from the robot link's `LedgerEvent`, the same message the recorder turns into the part's record,
so the ResultReady event and the record say the same thing. No asyncua here: address.py encodes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.runtime.messages import LedgerEvent

# ResultStateDataType (OPC 40100-1, 12.19): 1 Completed (processed correctly), 4 Failed.
RESULT_COMPLETED = 1
RESULT_FAILED = 4


@dataclass(frozen=True)
class PartResult:
    """What the Results folder and a ResultReady event carry about one part."""

    result_id: str  # "<boot_id>-<seq>": the record's key, unique on this appliance
    part_id: str  # the record's part_id (the robot's TRIGGER_SEQ), else the result id
    recipe_number: int
    recipe_name: str
    job_id: str  # the robot link's boot: one run of the line
    result_state: int
    creation_time: datetime
    start_time: datetime
    end_time: datetime
    acquisition_ms: float | None
    processing_ms: float | None
    verdict: str
    content: str  # JSON: verdict, reasons, classes, scores, stages, model, ...

    def message(self) -> str:
        """The event's Message: enough for a client that reads only BaseEventType's fields."""
        return (
            f"ResultId={self.result_id} PartId={self.part_id} Recipe={self.recipe_number} "
            f"Verdict={self.verdict}"
        )


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)


def _content(event: LedgerEvent, verdict: Verdict) -> dict[str, Any]:
    result = event.result
    detections = list(result.detections) if result is not None else []
    error = event.error_code if verdict is Verdict.FAULT else ErrorCode.NONE
    if verdict is Verdict.FAULT and error is ErrorCode.NONE:
        error = ErrorCode.INTERNAL
    return {
        "boot_id": event.trigger.boot_id,
        "seq": event.trigger.seq,
        "verdict": verdict.value,
        "reasons": list(event.reasons),
        "error": error.kind if verdict is Verdict.FAULT else None,
        "late": event.late,
        "classes": [str(d.get("class", "")) for d in detections],
        "scores": [d.get("confidence") for d in detections],
        "detections": detections,
        "stages": [
            {k: s.get(k) for k in ("stage", "kind", "verdict", "score", "threshold", "margin", "reasons")}
            for s in (result.stages if result is not None else ())
        ],
        "model": result.model.model_dump() if result is not None else None,
        "near_threshold": bool(result.near_threshold) if result is not None else False,
        "latency_ms": round(event.latency_ms, 3),
    }


def part_result(event: LedgerEvent) -> PartResult:
    """The result of one finalised part (a FAULT, LATE included, is a Failed result: never Completed)."""
    trigger, result = event.trigger, event.result
    verdict = event.verdict or Verdict.FAULT
    timings = result.timings_ms if result is not None else {}
    acquisition = timings.get("capture")
    processing = sum(v for k, v in timings.items() if k != "capture") if timings else None
    result_id = f"{trigger.boot_id}-{trigger.seq}"
    failed = verdict is Verdict.FAULT or event.late
    decided = event.wall_decided or trigger.wall_trigger
    return PartResult(
        result_id=result_id,
        part_id=trigger.part_id or result_id,
        recipe_number=trigger.recipe,
        recipe_name=result.recipe_name if result is not None else "",
        job_id=f"boot-{trigger.boot_id}",
        result_state=RESULT_FAILED if failed else RESULT_COMPLETED,
        creation_time=_utc(decided),
        start_time=_utc(trigger.wall_trigger),
        end_time=_utc(decided),
        acquisition_ms=acquisition,
        processing_ms=processing,
        verdict=verdict.value,
        content=json.dumps(_content(event, verdict), sort_keys=True, separators=(",", ":")),
    )
