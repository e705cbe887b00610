"""The station as the status page shows it: counts, yield, reject Pareto, recent verdicts, workers, link.

Fed by the final inspections (LedgerEvent) and the supervisor's reports; read by HTTP threads, so every
access holds one lock and readers get a plain JSON-able snapshot.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.runtime.messages import LedgerEvent
from edge.status.supervision import SupervisionReport

LINK_SILENT_S = 2.0  # a robot link heartbeat older than this: the link is shown as down


def reject_class(event: LedgerEvent) -> str:
    """The defect class that decided a REJECT (its top detection), for the Pareto."""
    result = event.result
    if result is None or result.top_class_id is None:
        return "unknown"
    for detection in result.detections:
        if detection.get("class_id") == result.top_class_id:
            return str(detection.get("class", f"class {result.top_class_id}"))
    return f"class {result.top_class_id}"


def fault_kind(event: LedgerEvent) -> str:
    """The error kind of a FAULT (`camera`, `timeout`, ...); `internal` if it carries none."""
    code = event.error_code if event.error_code is not ErrorCode.NONE else ErrorCode.INTERNAL
    return code.kind


def verdict_entry(event: LedgerEvent) -> dict[str, Any]:
    """One line of the verdict stream."""
    verdict = event.verdict or Verdict.FAULT
    trigger = event.trigger
    return {
        "boot_id": trigger.boot_id,
        "seq": trigger.seq,
        "part_id": trigger.part_id,
        "verdict": verdict.value,
        "reasons": list(event.reasons),
        "error": fault_kind(event) if verdict is Verdict.FAULT else None,
        "late": event.late,
        "latency_ms": event.latency_ms,
        "triggered_at": trigger.wall_trigger,
        "decided_at": event.wall_decided,
        "detections": len(event.result.detections) if event.result is not None else 0,
        "near_threshold": bool(
            verdict is Verdict.ACCEPT and event.result is not None and event.result.near_threshold
        ),
    }


class StationState:
    """Everything the page shows, updated by the worker loop and read by the HTTP threads."""

    def __init__(self, station: str, history: int, quota_bytes: int) -> None:
        self.station = station
        self.quota_bytes = quota_bytes
        self.since = time.time()
        self._lock = threading.Lock()
        self._verdicts: Counter[str] = Counter({v.value: 0 for v in Verdict})
        self._faults: Counter[str] = Counter()
        self._pareto: Counter[str] = Counter()
        self._late = 0
        self._recent: deque[LedgerEvent] = deque(maxlen=history)
        self._recipe: dict[str, Any] = {}
        self._model: dict[str, Any] = {}
        self._supervision: SupervisionReport | None = None
        self._supervision_at = 0.0

    def add(self, event: LedgerEvent) -> None:
        """Count one final inspection (other ledger kinds are ignored)."""
        if event.kind != "finalised":
            return
        verdict = event.verdict or Verdict.FAULT
        with self._lock:
            self._verdicts[verdict.value] += 1
            if verdict is Verdict.FAULT:
                self._faults[fault_kind(event)] += 1
            elif verdict is Verdict.REJECT:
                self._pareto[reject_class(event)] += 1
            self._late += int(event.late)
            self._recent.append(event)
            result = event.result
            if result is not None and result.model.sha256:
                self._recipe = {"number": event.trigger.recipe, "name": result.recipe_name}
                self._model = result.model.model_dump()
            elif not self._recipe:
                self._recipe = {"number": event.trigger.recipe, "name": ""}

    def set_supervision(self, report: SupervisionReport) -> None:
        with self._lock:
            self._supervision = report
            self._supervision_at = time.monotonic()

    def recent(self) -> list[LedgerEvent]:
        """The recent final inspections, newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def supervision(self) -> SupervisionReport | None:
        with self._lock:
            return self._supervision

    def snapshot(self) -> dict[str, Any]:
        """The page's JSON: a consistent copy taken under the lock."""
        with self._lock:
            total = sum(self._verdicts.values())
            accepted = self._verdicts[Verdict.ACCEPT.value]
            last = self._recent[-1] if self._recent else None
            return {
                "station": self.station,
                "since": self.since,
                "now": time.time(),
                "counts": {"total": total, **self._verdicts, "late": self._late},
                "yield_pct": round(100.0 * accepted / total, 2) if total else None,
                "pareto": [{"class": name, "count": n} for name, n in self._pareto.most_common()],
                "faults": dict(self._faults.most_common()),
                "recent": [verdict_entry(e) for e in reversed(self._recent)],
                "last": verdict_entry(last) if last is not None else None,
                "recipe": dict(self._recipe),
                "model": dict(self._model),
                **self._health(),
            }

    def _health(self) -> dict[str, Any]:
        report = self._supervision
        if report is None:
            return {"workers": {}, "link": {"state": "unknown"}, "line": {"ready": False, "fault": None}}
        age = time.monotonic() - self._supervision_at
        workers = {name: w.model_dump(exclude={"detail"}) for name, w in report.workers.items()}
        robot = report.workers.get("robotlink")
        link: dict[str, Any] = {"state": "down"}
        if robot is not None:
            alive = (
                robot.state in ("ready", "degraded", "done")
                and (robot.heartbeat_age_s or 0.0) < LINK_SILENT_S
            )
            detail = robot.detail
            link = {
                "state": "up" if alive and age < LINK_SILENT_S else "down",
                "ready": bool(detail.get("ready")),
                "interlock": bool(detail.get("interlock")),
                "boot_id": detail.get("boot_id"),
                "results_dropped": detail.get("results_dropped", 0),
                "connection": detail.get("link", {}),
            }
        line = {
            "ready": report.model_ready and report.camera_ready,
            "model_ready": report.model_ready,
            "camera_ready": report.camera_ready,
            "fault": report.fault,
            "report_age_s": round(age, 2),
        }
        return {"workers": workers, "link": link, "line": line}
