"""`/metrics` of a real `lineside run`: scraped during the run, parsed with prometheus_client's parser and
compared with what the run made. The status worker only observes: it may die without changing a verdict."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.records.images import crop_files
from edge.records.query import query
from tests.line import free_port, lineside, make_station, running_line
from tests.test_line import _connect, _trigger_and_wait, _wait_ready

pytestmark = pytest.mark.slow  # each runs `lineside run` as a process


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _wait_scrape(
    port: int, ready: object, timeout: float = 20
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    deadline = time.monotonic() + timeout
    last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    while time.monotonic() < deadline:
        try:
            last = _scrape(port)
        except OSError:
            last = {}
        if last and ready(last):  # type: ignore[operator]
            return last
        time.sleep(0.2)
    raise AssertionError(f"metrics never satisfied the condition; last scrape: {sorted(last.items())[:40]}")


def _verdicts(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "lineside_inspections_total"
    }


def test_metrics_match_the_parts_the_robot_triggered(tmp_path: Path) -> None:
    http = free_port()
    config, port = make_station(
        tmp_path, "gd", mode="robot", extra={"status": {"enabled": True, "port": http}}
    )
    with running_line(config) as line:
        client = _connect(port)
        _wait_ready(client)
        for seq in range(1, 7):
            _trigger_and_wait(client, seq)
        samples = _wait_scrape(port=http, ready=lambda s: sum(_verdicts(s).values()) >= 6)
        time.sleep(0.5)  # nothing more may arrive: the robot triggered exactly six parts
        samples = _scrape(http)
        client.close()
        line.process.send_signal(signal.SIGTERM)
        assert line.process.wait(30) == 0
    records = query(tmp_path / "records" / "records.db")
    assert len(records) == 6
    assert _verdicts(samples) == {"ACCEPT": 3, "REJECT": 3, "FAULT": 0}
    assert samples[("lineside_inspection_latency_seconds_count", ())] == 6
    assert samples[("lineside_stage_latency_seconds_count", (("stage", "infer"),))] == 6
    assert samples[("lineside_late_results_total", ())] == 0
    assert samples[("lineside_line_ready", ())] == 1 and samples[("lineside_robot_link_up", ())] == 1
    assert all(
        samples[("lineside_worker_restarts_total", (("worker", w),))] == 0 for w in ("capture", "status")
    )
    # The recorder's count covers each kept image and the evidence crops kept beside it (the same quota).
    kept = sum(
        path.stat().st_size
        for r in records
        if r.image_path
        for path in (
            tmp_path / "records" / r.image_path,
            *crop_files(tmp_path / "records", r.image_path).values(),
        )
    )
    assert samples[("lineside_records_image_bytes", ())] == kept > 0
    assert samples[("lineside_records_quota_bytes", ())] == 20 * 1024 * 1024


def test_killing_the_status_worker_restarts_it_and_never_changes_a_verdict(tmp_path: Path) -> None:
    http = free_port()
    config, _ = make_station(tmp_path, "gd", takt_ms=40, extra={"status": {"enabled": True, "port": http}})
    with running_line(config) as line:
        _wait_scrape(http, lambda s: sum(_verdicts(s).values()) >= 3)
        pid = line.worker_pid("status")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        key = ("lineside_worker_restarts_total", (("worker", "status"),))
        restarted = _wait_scrape(http, lambda s: s.get(key) == 1, timeout=40)
        assert restarted[("lineside_worker_restarts_total", (("worker", "capture"),))] == 0
        _wait_scrape(http, lambda s: sum(_verdicts(s).values()) >= 3)  # the new one counts parts again
        before_stop = len(line.part_lines())
        line.process.send_signal(signal.SIGTERM)
        assert line.process.wait(30) == 0
    records = query(tmp_path / "records" / "records.db")
    # Every part finished before the stop was judged as usual: the kill faulted nothing (parts caught in
    # the free-running line's own shutdown may be FAULTs, as without a status worker).
    judged = [r for r in records if r.seq <= before_stop]
    assert len(judged) == before_stop >= 6
    assert [r.verdict.value for r in judged] == [("ACCEPT" if r.seq % 2 else "REJECT") for r in judged]


def test_a_status_worker_that_cannot_start_is_given_up_and_the_line_runs_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http = taken.getsockname()[1]
        extra = {
            "status": {"enabled": True, "port": http},
            "supervisor": {"restart_budget": {"count": 1, "window_s": 60}},
        }
        config, _ = make_station(tmp_path, "gd", takt_ms=100, extra=extra)
        proc = lineside("run", str(config), "--max-parts", "30", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status" in proc.stderr and "giving it up (the line runs on without it)" in proc.stderr
    records = query(tmp_path / "records" / "records.db")
    assert [r.verdict.value for r in records] == ["ACCEPT", "REJECT"] * 15
