"""End-to-end: `lineside run` as a process: real workers, ZeroMQ sockets, Modbus server and records."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from edge.errors import ErrorCode
from edge.records.query import query
from edge.robotlink import registers as reg
from edge.robotlink.registers import StatusBit, VerdictCode, split_result_word
from tests.line import free_port, lineside, make_station, running_line

pytestmark = pytest.mark.slow


def _records(root: Path) -> list:  # type: ignore[type-arg]
    return query(root / "records" / "records.db")


def test_max_parts_stops_cleanly_with_one_record_per_part_and_right_verdicts(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gd")
    proc = lineside("run", str(config), "--max-parts", "12")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = _records(tmp_path)
    assert [r.seq for r in records] == list(range(1, 13))
    # Parts alternate good/defective (the folder loops): odd sequences are good, even are defective.
    assert [r.verdict.value for r in records] == ["ACCEPT", "REJECT"] * 6
    assert "summary: parts 12, accepted 6, rejected 6, faults 0" in proc.stdout
    rejected = [r for r in records if r.verdict.value == "REJECT"]
    assert all(r.image_path and (tmp_path / "records" / r.image_path).is_file() for r in rejected)
    assert all(r.model_sha256 and r.latency_ms["total"] > 0 for r in records)
    assert rejected[0].reasons[0].startswith("REJECT: scratch 0.")


def test_corrupt_frame_is_a_fault_for_that_part_and_the_line_goes_on(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gdgg", corrupt_at=2)
    proc = lineside("run", str(config), "--max-parts", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    verdicts = [(r.verdict.value, r.error_code) for r in _records(tmp_path)]
    fault = ("FAULT", int(ErrorCode.FRAME))
    assert verdicts == [("ACCEPT", 0), ("REJECT", 0), fault, ("ACCEPT", 0)] * 2


def _read_block(client: ModbusTcpClient) -> list[int]:
    rr = client.read_holding_registers(0, count=reg.LINESIDE_COUNT, device_id=1)
    assert not rr.isError(), rr
    return list(rr.registers)


def _trigger_and_wait(
    client: ModbusTcpClient, seq: int, deadline_s: float = 3.0, write: bool = True
) -> list[int]:
    """Act as the robot: write TRIGGER_SEQ (unless already written) and poll until its result is published."""
    if write:
        assert not client.write_register(reg.TRIGGER_SEQ, seq, device_id=1).isError()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        block = _read_block(client)
        _code, low_seq = split_result_word(block[reg.RESULT_WORD])
        if block[reg.RESULT_WORD] and low_seq == (seq & 0x0FFF) and block[reg.RESULT_SEQ] == seq:
            return block
        time.sleep(0.01)
    raise AssertionError(f"no result for trigger {seq} within {deadline_s} s")


def _wait_ready(client: ModbusTcpClient, timeout: float = 30) -> list[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        block = _read_block(client)
        if block[reg.STATUS] & StatusBit.READY:
            return block
        time.sleep(0.05)
    raise AssertionError("appliance never became READY")


def _connect(port: int, timeout: float = 20) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    end = time.monotonic() + timeout
    while not client.connect():
        assert time.monotonic() < end, "Modbus server did not come up"
        time.sleep(0.1)
    return client


def test_heartbeat_moves_and_robot_triggers_get_their_own_results(tmp_path: Path) -> None:
    config, port = make_station(tmp_path, "gd", mode="robot")
    with running_line(config) as line:
        client = _connect(port)
        first = _wait_ready(client)
        time.sleep(0.35)
        assert _read_block(client)[reg.HEARTBEAT] != first[reg.HEARTBEAT]
        good = _trigger_and_wait(client, 101)
        bad = _trigger_and_wait(client, 102)
        client.close()
        line.process.send_signal(signal.SIGTERM)
        assert line.process.wait(30) == 0
    assert split_result_word(good[reg.RESULT_WORD])[0] == VerdictCode.ACCEPT
    assert split_result_word(bad[reg.RESULT_WORD])[0] == VerdictCode.REJECT
    assert [(r.part_id, r.verdict.value) for r in _records(tmp_path)] == [
        ("101", "ACCEPT"),
        ("102", "REJECT"),
    ]


def test_inference_killed_mid_part_faults_that_part_never_accepts_and_is_restarted(tmp_path: Path) -> None:
    config, port = make_station(tmp_path, "g", mode="robot", budget_ms=300)
    with running_line(config) as line:
        client = _connect(port)
        _wait_ready(client)
        ok = _trigger_and_wait(client, 1)
        assert split_result_word(ok[reg.RESULT_WORD])[0] == VerdictCode.ACCEPT
        victim = line.worker_pid("inference")
        assert victim is not None
        os.kill(victim, signal.SIGSTOP)  # hang it with the next part's frame in its queue
        block = _trigger_and_wait(client, 2)
        os.kill(victim, signal.SIGKILL)
        code, _ = split_result_word(block[reg.RESULT_WORD])
        assert code in (VerdictCode.LATE, VerdictCode.ERROR)
        assert block[reg.ERROR_CODE] in (ErrorCode.TIMEOUT, ErrorCode.OVERLOAD)
        restarted = lambda: line.worker_pid("inference") not in (None, victim)  # noqa: E731
        line.wait_for(restarted, 20, "a new inference worker")
        _wait_ready(client)
        again = _trigger_and_wait(client, 3)
        assert split_result_word(again[reg.RESULT_WORD])[0] == VerdictCode.ACCEPT
        client.close()
    records = _records(tmp_path)
    assert [(r.part_id, r.verdict.value) for r in records] == [
        ("1", "ACCEPT"),
        ("2", "FAULT"),
        ("3", "ACCEPT"),
    ]
    assert any("restarting" in line for line in line.stderr)


def test_sigterm_mid_run_loses_no_finished_inspection(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gdd", takt_ms=10)
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 15, 60, "15 parts")
        line.process.send_signal(signal.SIGTERM)
        assert line.process.wait(30) == 0
    printed = len(line.part_lines())
    records = _records(tmp_path)
    assert len(records) == printed >= 15
    assert len({r.seq for r in records}) == len(records)
    # Ground truth by position in the looped folder: only every third part is good.
    wrong_accepts = [r.seq for r in records if r.verdict.value == "ACCEPT" and (r.seq - 1) % 3 != 0]
    assert wrong_accepts == []


def test_check_accepts_a_valid_config_and_names_the_bad_field(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path / "good", "g")
    ok = lineside("run", "--check", str(config))
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = config.read_text().replace("mode: free_run", "mode: sometimes")
    (tmp_path / "bad.yaml").write_text(bad)
    proc = lineside("run", "--check", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 1
    assert "field 'trigger.mode'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    unknown = config.read_text().replace("station:", "statoin: {}\nstation:")
    (tmp_path / "unknown.yaml").write_text(unknown)
    proc = lineside("run", "--check", str(tmp_path / "unknown.yaml"))
    assert proc.returncode == 1 and "field 'statoin': unknown key" in proc.stderr


def test_check_refuses_a_model_whose_checksum_does_not_match(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "g")
    onnx = tmp_path / "model" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"tampered")
    proc = lineside("run", "--check", str(config))
    assert proc.returncode == 1
    assert "sha256" in proc.stderr and "refused" in proc.stderr


def test_a_second_line_on_the_same_records_folder_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    import yaml

    config, _ = make_station(tmp_path, "gd", takt_ms=50.0)
    second = tmp_path / "second.yaml"
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["robot_link"]["port"] = free_port()  # only the records folder is shared
    second.write_text(yaml.safe_dump(settings), encoding="utf-8")
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 2, 60, "the first line's parts")
        refused = lineside("run", str(second), "--max-parts", "1", timeout=60)
        assert refused.returncode != 0
        held = f"records.dir: {tmp_path / 'records'} is in use by another running line (pid "
        assert held in refused.stderr
        assert line.process.poll() is None  # the first line goes on
    again = lineside("run", str(second), "--max-parts", "2", timeout=120)  # released at its stop
    assert again.returncode == 0, again.stderr
