"""The status worker's pieces on real objects: counts, yield and Pareto, metrics, the JSON endpoint and the
annotated last frame, served by the real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.errors import ErrorCode
from edge.judge.inspection import Detection, Verdict
from edge.records.images import image_relpath
from edge.runtime.messages import LedgerEvent, ModelRef, Result, Trigger
from edge.runtime.workers.record_of import record_from_event
from edge.status.frame import LastFrame, kept_image_path
from edge.status.metrics import LineMetrics
from edge.status.server import StatusServer
from edge.status.state import StationState
from edge.status.supervision import SupervisionReport, WorkerReport

MODEL = ModelRef(name="tiny", version="3", sha256="ab" * 32)
SCRATCH = Detection(0, "scratch", 0.9, (10.0, 10.0, 40.0, 30.0))
PIT = Detection(1, "pit", 0.8, (50.0, 50.0, 60.0, 60.0))


def _trigger(seq: int) -> Trigger:
    return Trigger(
        boot_id=7,
        seq=seq,
        trigger_seq=seq,
        recipe=2,
        t_trigger=time.monotonic(),
        wall_trigger=time.time(),
        budget_ms=400.0,
    )


def _event(
    seq: int,
    verdict: Verdict,
    *,
    top: Detection | None = None,
    error: ErrorCode = ErrorCode.NONE,
    late: bool = False,
) -> LedgerEvent:
    trigger = _trigger(seq)
    result = None
    if verdict is not Verdict.FAULT:
        detections = (top.to_json(),) if top is not None else ()
        result = Result(
            trigger=trigger,
            verdict=verdict,
            reasons=(f"{verdict.value}: test",),
            model=MODEL,
            top_class_id=top.class_id if top is not None else None,
            detections=detections,
            timings_ms={"infer": 4.0, "decode": 1.0},
            recipe_name="bracket",
        )
    return LedgerEvent(
        kind="finalised",
        trigger=trigger,
        verdict=verdict,
        reasons=(f"{verdict.value}: test",),
        error_code=error,
        late=late,
        latency_ms=12.5,
        wall_decided=time.time(),
        result=result,
    )


def _shift() -> list[LedgerEvent]:
    return [
        _event(1, Verdict.ACCEPT),
        _event(2, Verdict.REJECT, top=SCRATCH),
        _event(3, Verdict.REJECT, top=SCRATCH),
        _event(4, Verdict.REJECT, top=PIT),
        _event(5, Verdict.FAULT, error=ErrorCode.CAMERA),
        _event(6, Verdict.FAULT, error=ErrorCode.TIMEOUT, late=True),
        _event(7, Verdict.ACCEPT),
        _event(8, Verdict.ACCEPT),
    ]


def _report() -> SupervisionReport:
    return SupervisionReport(
        workers={
            "robotlink": WorkerReport(
                state="ready",
                pid=11,
                heartbeat_age_s=0.1,
                detail={"ready": True, "interlock": False, "results_dropped": 2},
            ),
            "recorder": WorkerReport(
                state="ready", pid=12, heartbeat_age_s=0.1, detail={"image_bytes": 4096}
            ),
            "status": WorkerReport(state="ready", pid=13, restarts=3, heartbeat_age_s=0.1, optional=True),
        },
        model_ready=True,
        camera_ready=True,
        t=time.time(),
    )


def test_counts_yield_pareto_and_faults_follow_the_final_verdicts() -> None:
    state = StationState("line-a", history=5, quota_bytes=1000)
    for event in _shift():
        state.add(event)
    state.add(LedgerEvent(kind="triggered", trigger=_trigger(9)))  # not final: not counted
    snap = state.snapshot()
    assert snap["counts"] == {"total": 8, "ACCEPT": 3, "REJECT": 3, "FAULT": 2, "late": 1}
    assert snap["yield_pct"] == 37.5
    assert snap["pareto"] == [{"class": "scratch", "count": 2}, {"class": "pit", "count": 1}]
    assert snap["faults"] == {"camera": 1, "timeout": 1}
    assert [v["seq"] for v in snap["recent"]] == [8, 7, 6, 5, 4]  # newest first, bounded by history
    assert snap["recipe"] == {"number": 2, "name": "bracket"} and snap["model"]["version"] == "3"


def test_no_parts_means_no_yield_not_zero_and_unknown_link() -> None:
    snap = StationState("line-a", history=5, quota_bytes=1).snapshot()
    assert snap["yield_pct"] is None and snap["counts"]["total"] == 0
    assert snap["link"]["state"] == "unknown" and snap["line"]["ready"] is False


def test_supervisor_report_gives_workers_and_link_state() -> None:
    state = StationState("line-a", history=5, quota_bytes=1)
    state.set_supervision(_report())
    snap = state.snapshot()
    assert snap["link"]["state"] == "up" and snap["link"]["results_dropped"] == 2
    assert snap["workers"]["status"]["restarts"] == 3 and snap["workers"]["status"]["optional"] is True
    assert snap["line"]["ready"] is True


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_verdicts_faults_latencies_restarts_and_quota(tmp_path: Path) -> None:
    state = StationState("line-a", history=5, quota_bytes=20 * 1024 * 1024)
    metrics = LineMetrics(state, tmp_path)
    (tmp_path / "records.db").write_bytes(b"x" * 300)
    for event in _shift():
        metrics.observe(event)
    state.set_supervision(_report())
    samples = _samples(metrics.exposition().decode())
    assert samples[("lineside_inspections_total", (("verdict", "ACCEPT"),))] == 3
    assert samples[("lineside_inspections_total", (("verdict", "REJECT"),))] == 3
    assert samples[("lineside_faults_total", (("code", "1"), ("kind", "camera")))] == 1
    assert samples[("lineside_faults_total", (("code", "4"), ("kind", "timeout")))] == 1
    assert samples[("lineside_late_results_total", ())] == 1
    assert samples[("lineside_inspection_latency_seconds_count", ())] == 8
    assert (
        samples[("lineside_stage_latency_seconds_count", (("stage", "infer"),))] == 6
    )  # faults had no result
    assert samples[("lineside_stage_latency_seconds_bucket", (("le", "0.005"), ("stage", "infer")))] == 6
    assert samples[("lineside_worker_restarts_total", (("worker", "status"),))] == 3
    assert samples[("lineside_dropped", (("what", "result_for_an_older_part"),))] == 2
    assert samples[("lineside_records_quota_bytes", ())] == 20 * 1024 * 1024
    assert samples[("lineside_records_image_bytes", ())] == 4096
    assert samples[("lineside_records_dir_bytes", ())] == 300
    assert samples[("lineside_robot_link_up", ())] == 1


def test_kept_image_path_is_where_the_recorder_puts_the_image() -> None:
    event = _event(2, Verdict.REJECT, top=SCRATCH)
    for image_format in ("jpg", "png"):
        expected = image_relpath(record_from_event(event), image_format)
        assert str(kept_image_path(event, image_format)) == expected


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, StationState]]:
    state = StationState("line-a", history=10, quota_bytes=1 << 20)
    server = StatusServer("127.0.0.1", 0, state, LineMetrics(state, tmp_path), LastFrame(tmp_path, "png"))
    server.start()
    host, port = server.address
    try:
        yield f"http://{host}:{port}", state
    finally:
        server.close()


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_json_endpoint_page_and_metrics_are_served_over_http(served: tuple[str, StationState]) -> None:
    url, state = served
    state.add(_event(1, Verdict.REJECT, top=SCRATCH))
    status, headers, body = _get(url + "/api/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["counts"]["REJECT"] == 1
    status, _, page = _get(url + "/")
    assert status == 200 and b"count-total" in page
    status, _, text = _get(url + "/metrics")
    assert (
        status == 200
        and _samples(text.decode())[("lineside_inspections_total", (("verdict", "REJECT"),))] == 0
    )
    assert _get(url + "/nope")[0] == 404


def test_last_frame_is_the_newest_kept_image_with_its_boxes_drawn(
    served: tuple[str, StationState], tmp_path: Path
) -> None:
    url, state = served
    assert _get(url + "/api/frame.jpg")[0] == 404  # nothing kept yet: said so, not a blank image
    kept = _event(1, Verdict.REJECT, top=SCRATCH)
    path = tmp_path / kept_image_path(kept, "png")
    path.parent.mkdir(parents=True)
    cv2.imwrite(str(path), np.full((80, 120, 3), 90, np.uint8))
    state.add(kept)
    state.add(_event(2, Verdict.ACCEPT))  # newer, but its image was not kept
    status, headers, jpeg = _get(url + "/api/frame.jpg")
    assert status == 200 and headers["X-Part"] == "7-1"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape[1] == 480  # enlarged for legibility (scale 4)
    box_edge = image[40:120, 40].astype(int)  # the left edge of the scratch box, x = 10 * 4
    assert (box_edge[:, 2] - box_edge[:, 1]).mean() > 100  # drawn in red over the grey part
