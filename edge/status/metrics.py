"""Prometheus metrics of the line: inspections by verdict, faults by kind, stage latencies, drops,
worker restarts, link state and records disk use, in one registry owned by the status worker."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.runtime.messages import LedgerEvent
from edge.status.alarms import AlarmBoard, AlarmsCollector
from edge.status.state import StationState, fault_kind

LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
DIR_SIZE_EVERY_S = 10.0  # walking a large image tree is not free: at most this often
UP_STATES = ("ready", "degraded", "done")
# Per-worker counters that mean "something was dropped" (they restart from 0 with their worker).
DROP_COUNTERS = (
    ("robotlink", "results_dropped", "result_for_an_older_part"),
    ("inference", "stale_frames", "stale_frame"),
    ("capture", "stale_triggers", "stale_trigger"),
    ("capture", "overload", "capture_overload"),
    ("recorder", "images_dropped", "image_not_joined"),
)


class LineMetrics:
    """Counts final inspections as they arrive; the supervisor's view is read at scrape time."""

    def __init__(self, state: StationState, records_dir: Path) -> None:
        self.registry = CollectorRegistry()
        self.inspections = Counter(
            "lineside_inspections", "Final inspections by verdict.", ["verdict"], registry=self.registry
        )
        self.faults = Counter(
            "lineside_faults", "FAULT verdicts by error kind.", ["kind", "code"], registry=self.registry
        )
        self.late = Counter(
            "lineside_late_results", "Results that came after their publish budget.", registry=self.registry
        )
        self.latency = Histogram(
            "lineside_inspection_latency_seconds",
            "Trigger to final verdict (the ledger's latency).",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.stages = Histogram(
            "lineside_stage_latency_seconds",
            "Time per pipeline stage of one inspection (the result's timings).",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        for verdict in Verdict:
            self.inspections.labels(verdict=verdict.value)  # zero series exist before the first part
        self.registry.register(_SupervisionCollector(state, records_dir))
        self.alarms = AlarmBoard()  # the alarms worker's state (edge/status/alarms.py), set by the worker
        self.registry.register(AlarmsCollector(self.alarms))

    def observe(self, event: LedgerEvent) -> None:
        if event.kind != "finalised":
            return
        verdict = event.verdict or Verdict.FAULT
        self.inspections.labels(verdict=verdict.value).inc()
        if verdict is Verdict.FAULT:
            code = event.error_code if event.error_code is not ErrorCode.NONE else ErrorCode.INTERNAL
            self.faults.labels(kind=fault_kind(event), code=str(int(code))).inc()
        if event.late:
            self.late.inc()
        if event.latency_ms > 0:
            self.latency.observe(event.latency_ms / 1000.0)
        if event.result is not None:
            for stage, ms in event.result.timings_ms.items():
                self.stages.labels(stage=stage).observe(max(0.0, ms) / 1000.0)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _SupervisionCollector(Collector):
    """Gauges from the supervisor's latest report and the records folder, computed at scrape time."""

    def __init__(self, state: StationState, records_dir: Path) -> None:
        self.state = state
        self.records_dir = records_dir
        self._dir_bytes = 0
        self._dir_at = -DIR_SIZE_EVERY_S

    def collect(self) -> Iterator[Metric]:
        report = self.state.supervision()
        restarts = CounterMetricFamily("lineside_worker_restarts", "Worker restarts.", labels=["worker"])
        up = GaugeMetricFamily(
            "lineside_worker_up", "1 while the worker is alive and reporting.", labels=["worker"]
        )
        dropped = GaugeMetricFamily(
            "lineside_dropped", "Items dropped, per reason (since that worker started).", labels=["what"]
        )
        link = GaugeMetricFamily("lineside_robot_link_up", "1 while the robot link process is alive.")
        ready = GaugeMetricFamily("lineside_line_ready", "1 while the line is READY (model and camera).")
        interlock = GaugeMetricFamily("lineside_interlock_raised", "1 while the line interlock is raised.")
        if report is not None:
            for name, worker in report.workers.items():
                restarts.add_metric([name], worker.restarts)
                up.add_metric([name], 1.0 if worker.state in UP_STATES else 0.0)
            for worker_name, key, what in DROP_COUNTERS:
                value = report.workers[worker_name].detail.get(key) if worker_name in report.workers else None
                if isinstance(value, (int, float)):
                    dropped.add_metric([what], float(value))
            robot = report.workers.get("robotlink")
            link.add_metric([], 1.0 if robot is not None and robot.state in UP_STATES else 0.0)
            ready.add_metric([], float(report.model_ready and report.camera_ready))
            interlock.add_metric([], float(bool(robot is not None and robot.detail.get("interlock"))))
        yield from (restarts, up, dropped, link, ready, interlock)
        recorder = report.workers.get("recorder") if report is not None else None
        yield from self._disk(recorder.detail if recorder is not None else {})

    def _disk(self, recorder: dict[str, object]) -> Iterator[Metric]:
        quota = GaugeMetricFamily("lineside_records_quota_bytes", "Image quota of the records folder.")
        quota.add_metric([], float(self.state.quota_bytes))
        images = GaugeMetricFamily(
            "lineside_records_image_bytes", "Bytes of kept images (the recorder's count)."
        )
        kept = recorder.get("image_bytes")
        if isinstance(kept, (int, float)):
            images.add_metric([], float(kept))
        folder = GaugeMetricFamily(
            "lineside_records_dir_bytes", "Bytes in the records folder (database included)."
        )
        folder.add_metric([], float(self._folder_bytes()))
        yield from (quota, images, folder)

    def _folder_bytes(self) -> int:
        now = time.monotonic()
        if now - self._dir_at >= DIR_SIZE_EVERY_S:
            self._dir_bytes = folder_bytes(self.records_dir)
            self._dir_at = now
        return self._dir_bytes


def folder_bytes(root: Path) -> int:
    """Total size of the files under `root` (0 if absent); files vanishing meanwhile are skipped."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name), follow_symlinks=False).st_size
            except OSError:
                continue  # evicted or renamed while we walked
    return total
