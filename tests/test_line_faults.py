"""End-to-end faults: camera lost, a stuck worker, a spent restart budget, a killed supervisor; and the
line's outputs other programs read (the ZeroMQ result stream, `inspect --json`, `records`, mbpoll)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
import zmq

from edge.errors import ErrorCode
from edge.records.query import query
from edge.robotlink import registers as reg
from edge.robotlink.registers import VerdictCode, split_result_word
from tests.debian import require_debian
from tests.line import free_port, lineside, make_station, running_line, write_part
from tests.test_line import _connect, _trigger_and_wait, _wait_ready
from tests.test_sources import MjpegServer

pytestmark = pytest.mark.slow


def test_camera_lost_faults_every_triggered_part_until_it_returns(tmp_path: Path) -> None:
    server = MjpegServer(fps=30)
    stream = {"kind": "stream", "url": server.url, "reconnect_initial_s": 0.1, "reconnect_max_s": 0.3}
    config, port = make_station(tmp_path, "g", mode="robot", extra={"source": stream})
    # The stream source takes no folder options.
    config.write_text(config.read_text().replace("  loop: true\n", "").replace("  path: parts\n", ""))
    try:
        with running_line(config) as line:
            client = _connect(port)
            _wait_ready(client)
            first = _trigger_and_wait(client, 1)
            assert split_result_word(first[reg.RESULT_WORD])[0] in (VerdictCode.ACCEPT, VerdictCode.REJECT)
            server_port = server.port
            server.stop()
            lost = [_trigger_and_wait(client, seq) for seq in (2, 3, 4)]
            for block in lost:
                assert split_result_word(block[reg.RESULT_WORD])[0] == VerdictCode.ERROR
                assert block[reg.ERROR_CODE] in (ErrorCode.CAMERA, ErrorCode.NOT_READY)
            server = MjpegServer(port=server_port, fps=30)
            # Until the source has reconnected every part is still an ERROR; then verdicts return.
            codes = []
            for seq in range(5, 200):
                block = _trigger_and_wait(client, seq)
                codes.append((split_result_word(block[reg.RESULT_WORD])[0], block[reg.ERROR_CODE]))
                if codes[-1][0] != VerdictCode.ERROR:
                    break
                time.sleep(0.05)
            assert codes[-1][0] in (VerdictCode.ACCEPT, VerdictCode.REJECT), codes
            assert all(code == VerdictCode.ERROR for code, _ in codes[:-1])
            client.close()
            line.process.send_signal(signal.SIGTERM)
            assert line.process.wait(30) == 0
    finally:
        if not server.stop_event.is_set():
            server.stop()


def test_a_hung_worker_is_detected_killed_and_restarted(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gd", takt_ms=20)
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 3, 30, "first parts")
        victim = line.worker_pid("capture")
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)
        line.wait_for(lambda: line.worker_pid("capture") not in (None, victim), 20, "capture restarted")
        before = len(line.part_lines())
        line.wait_for(lambda: len(line.part_lines()) >= before + 3, 30, "parts after the restart")
    assert any("stuck" in text and "capture" in text for text in line.stderr)


def test_spent_restart_budget_faults_and_stops_with_a_nonzero_exit(tmp_path: Path) -> None:
    config, _ = make_station(
        tmp_path, "g", extra={"supervisor": {"restart_budget": {"count": 2, "window_s": 60}}}
    )
    shutil.rmtree(tmp_path / "parts")  # capture cannot open its source: it dies at every start
    proc = lineside("run", str(config), timeout=120)
    assert proc.returncode == 1
    assert "restart budget" in proc.stderr and "capture" in proc.stderr


def test_killed_supervisor_takes_its_workers_and_the_modbus_server_down(tmp_path: Path) -> None:
    config, port = make_station(tmp_path, "g", mode="robot")
    with running_line(config) as line:
        client = _connect(port)
        _wait_ready(client)
        client.close()
        workers = [line.worker_pid(w) for w in ("capture", "inference", "robotlink", "recorder")]
        line.process.kill()
        line.process.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
            time.sleep(0.1)
        alive = [pid for pid in workers if pid is not None and _alive(pid)]
        assert alive == []
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has exited; only its parent's wait is missing


def test_final_inspections_are_published_as_json_on_zeromq(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config, _ = make_station(tmp_path, "gd", takt_ms=50, extra={"publish": {"endpoint": endpoint}})
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    try:
        with running_line(config):
            received: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while len(received) < 4 and time.monotonic() < deadline:
                if sub.poll(200):
                    received.append(json.loads(sub.recv_multipart()[0]))
    finally:
        sub.close(0)
        ctx.term()
    assert len(received) == 4
    for event in received:
        assert event["kind"] == "finalised"
        assert event["verdict"] in ("ACCEPT", "REJECT")
        assert event["result"]["model"]["sha256"]
        assert event["trigger"]["seq"] >= 1


GRACE_MS = 1200


def test_a_restarted_robot_link_loses_no_part_from_the_result_stream(tmp_path: Path) -> None:
    """A restarted robot link binds the stream anew and its subscribers must reconnect: it takes no part
    for `publish.resubscribe_grace_ms`, so a subscriber that retries faster still sees the new BOOT_ID's
    first parts. Here a slow one: it retries every 0.4 s plus up to 0.4 s of ZeroMQ's random jitter (the
    default is 0.1 s), against a 1.2 s grace; with no grace it misses the first parts nearly every time (the
    first comes ~0.1 s after the bind)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    publish = {"endpoint": endpoint, "resubscribe_grace_ms": GRACE_MS}
    config, _ = make_station(tmp_path, "gd", takt_ms=50, extra={"publish": publish})
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RECONNECT_IVL, 400)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    seqs: dict[int, list[int]] = {}  # BOOT_ID -> finalised seqs, in the order received

    def receive_until(done: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            if sub.poll(100):
                event = json.loads(sub.recv_multipart()[0])
                if event["kind"] == "finalised":
                    seqs.setdefault(event["trigger"]["boot_id"], []).append(event["trigger"]["seq"])

    try:
        with running_line(config) as line:
            receive_until(lambda: sum(map(len, seqs.values())) >= 5, 30)
            pid = line.worker_pid("robotlink")
            assert seqs and pid is not None
            os.kill(pid, signal.SIGKILL)
            receive_until(lambda: len(seqs) >= 2 and len(seqs[list(seqs)[-1]]) >= 20, 30)
    finally:
        sub.close(0)
        ctx.term()
    assert len(seqs) == 2, f"one BOOT_ID before the kill, one after: {list(seqs)}"
    after = seqs[list(seqs)[-1]]
    assert after == list(range(1, len(after) + 1)), (
        f"parts missing from the stream after the restart: {after}"
    )


def test_inspect_json_prints_one_valid_line_per_image_with_boxes_in_image_pixels(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gd")
    folder = tmp_path / "parts"
    (folder / "zz_corrupt.png").write_bytes(b"not a png at all")
    proc = lineside("inspect", "--json", "--config", str(config), str(folder))
    lines = [json.loads(text) for text in proc.stdout.splitlines()]
    assert proc.returncode == 1  # one image was a FAULT
    assert [(Path(o["image"]).name, o["verdict"]) for o in lines] == [
        ("part_000.png", "ACCEPT"),
        ("part_001.png", "REJECT"),
        ("zz_corrupt.png", "FAULT"),
    ]
    for outcome in lines:
        assert set(outcome) == {"image", "verdict", "reasons", "detections", "stages"}
        for det in outcome["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 120
    weak = lineside(
        "inspect", "--json", "--min-confidence", "0.01", "--config", str(config), str(folder / "part_000.png")
    )
    good = json.loads(weak.stdout)
    assert weak.returncode == 0 and good["verdict"] == "ACCEPT" and len(good["detections"]) == 1


def test_inspect_refuses_a_model_with_a_wrong_checksum_in_one_line(tmp_path: Path) -> None:
    make_station(tmp_path, "g")
    card_path = tmp_path / "model" / "card.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    image = tmp_path / "one.png"
    write_part(image, defective=False)
    proc = lineside("inspect", "--model", str(tmp_path / "model"), str(image))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "sha256" in proc.stderr


def test_records_command_lists_and_exports_what_a_run_stored(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gd")
    assert lineside("run", str(config), "--max-parts", "6").returncode == 0
    out = tmp_path / "rejects.jsonl"
    proc = lineside(
        "records", "--config", str(config), "--verdict", "REJECT", "--format", "jsonl", "--output", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(text) for text in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == [2, 4, 6] and {r["verdict"] for r in rows} == {"REJECT"}
    table = lineside("records", "--dir", str(tmp_path / "records"))
    assert table.returncode == 0 and table.stdout.count("ACCEPT") == 3


def test_mbpoll_sees_the_heartbeat_move_during_a_run(tmp_path: Path) -> None:
    require_debian("mbpoll", programs=("mbpoll",))
    config, port = make_station(tmp_path, "gd", takt_ms=50)
    with running_line(config):
        _connect(port).close()
        beats = []
        for _ in range(3):
            proc = subprocess.run(
                [
                    "mbpoll",
                    "-m",
                    "tcp",
                    "-p",
                    str(port),
                    "-a",
                    "1",
                    "-0",
                    "-r",
                    "0",
                    "-c",
                    "11",
                    "-t",
                    "4",
                    "-1",
                    "127.0.0.1",
                ],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            beats.append(int(proc.stdout.split("[1]:")[1].split()[0]))
            time.sleep(0.3)
    assert len(set(beats)) == 3 and all(b > 0 for b in beats)


def test_a_line_that_cannot_become_ready_says_why_instead_of_waiting_silently(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "g", extra={"supervisor": {"not_ready_warn_s": 0.5}})
    onnx = tmp_path / "model" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"tampered")
    with running_line(config) as line:
        said_why = lambda: any("not READY" in t and "degraded" in t for t in line.stderr)  # noqa: E731
        line.wait_for(said_why, 30, "a not-READY warning naming the model")
    warning = next(text for text in line.stderr if "not READY" in text and "degraded" in text)
    assert "inference degraded" in warning and "sha256" in warning and "refused" in warning
    assert line.part_lines() == []  # free-run never triggers a part it cannot inspect


def test_hardware_trigger_makes_each_camera_frame_a_part_judged_on_its_own_frame(tmp_path: Path) -> None:
    server = MjpegServer(fps=5)
    stream = {"kind": "stream", "url": server.url, "buffer": "fifo"}
    config, _ = make_station(tmp_path, "g", mode="hardware", extra={"source": stream})
    config.write_text(config.read_text().replace("  loop: true\n", "").replace("  path: parts\n", ""))
    try:
        proc = lineside("run", str(config), "--max-parts", "12", timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = query(tmp_path / "records" / "records.db")
    assert len(records) == 12 and all(r.part_id is None for r in records)
    judged = [r for r in records if r.verdict.value != "FAULT"]
    # A frame arriving while the last part is still in flight supersedes it (a FAULT, never a pass);
    # on a loaded machine a few may, but most parts are judged.
    assert len(judged) >= 6, [r.reasons for r in records]
    # The stream's frames step through grey levels: a rejected part's stored frame must be a bright one.
    for record in (r for r in judged if r.verdict.value == "REJECT"):
        image = cv2.imread(str(tmp_path / "records" / str(record.image_path)))
        assert image is not None and image.mean() > 120
