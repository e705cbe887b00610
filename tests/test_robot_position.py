"""The deciding defect's robot-plane position in DEFECT_X/DEFECT_Y: its encoding, when it is published and
cleared, CHECK covering it, and the whole path from a calibrated `lineside run` to the robot's registers."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Decision, Verdict
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.registers import VerdictCode
from edge.robotlink.robot import PartOutcome
from edge.robotlink.robotrules import defect_position, judge
from lineside.commands.robotsim import _print_part
from tests.line import FRAME_H, FRAME_W, free_port, lineside, make_station, running_line
from tests.test_robotlink_client import PyModbusTcpRobot, connected_and_ready, linked, run, until
from tests.test_robotlink_fuzz import served
from tests.test_robotlink_handshake import ACCEPT, MODEL_FAULT, live, result, trigger, verdict_of

AT = (180.0, 260.0)  # mm on the robot plane
AT_REGISTERS = (1800 + 16384, 2600 + 16384)
REJECT_AT = Decision(
    Verdict.REJECT, ("REJECT: scratch 0.91",), top_class_id=0, top_confidence=0.91, robot_position=AT
)


def _position(block: list[int]) -> tuple[int, int]:
    return block[reg.DEFECT_X], block[reg.DEFECT_Y]


# ---- the encoding --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mm", [-1638.3, -250.04, -0.05, 0.0, 0.1, 12.34, 180.0, 1638.3])
def test_position_round_trips_to_a_tenth_of_a_millimetre(mm: float) -> None:
    value = reg.encode_position(mm)
    assert 1 <= value <= reg.MAX_REGISTER
    decoded = reg.decode_position(value)
    assert decoded is not None and math.isclose(decoded, round(mm * 10) / 10, abs_tol=1e-9)


def test_position_encoding_is_offset_binary_and_0_means_no_position() -> None:
    assert reg.encode_position(0.0) == 16384
    assert reg.encode_position(180.0) == 18184 and reg.encode_position(-180.0) == 14584
    assert reg.decode_position(0) is None
    assert reg.decode_position(1) == -1638.3 and reg.decode_position(32767) == 1638.3


@pytest.mark.parametrize("mm", [1638.4, -1638.4, 5000.0, -1e9, math.nan, math.inf, -math.inf])
def test_a_position_that_does_not_fit_is_refused_never_clamped(mm: float) -> None:
    with pytest.raises(LinesideError, match="DEFECT_X/Y"):
        reg.encode_position(mm)


@pytest.mark.parametrize("value", [-1, 32768, 65535])
def test_a_register_value_outside_0_32767_does_not_decode(value: int) -> None:
    with pytest.raises(LinesideError, match="DEFECT_X/Y value"):
        reg.decode_position(value)


# ---- the handshake -------------------------------------------------------------------------------------
def test_reject_with_a_position_publishes_defect_x_y_and_check_covers_them() -> None:
    hs, _ = live()
    result(hs, trigger(hs, 40), REJECT_AT)
    block = hs.snapshot()
    assert verdict_of(block) == VerdictCode.REJECT
    assert _position(block) == AT_REGISTERS
    assert block[reg.CHECK] == reg.check_word(block)
    assert defect_position(block) == AT
    flipped = list(block)
    flipped[reg.DEFECT_X] ^= 1  # one bit of the position alone
    assert reg.check_word(flipped) != flipped[reg.CHECK]
    judged = judge(flipped, 40, 77, late=False, heartbeat_fresh=True)
    assert judged is not None and judged[1] == "comm" and "CHECK mismatch" in judged[2]


def test_a_torn_read_cannot_pair_an_old_position_with_a_new_result() -> None:
    hs, _ = live()
    result(hs, trigger(hs, 1), REJECT_AT)
    old = hs.snapshot()
    other = Decision(
        Verdict.REJECT, ("REJECT: pit",), top_class_id=1, top_confidence=0.8, robot_position=(-5.0, 7.5)
    )
    result(hs, trigger(hs, 2), other)
    new = hs.snapshot()
    assert _position(new) == (reg.encode_position(-5.0), reg.encode_position(7.5))
    torn = list(new)
    torn[reg.DEFECT_X], torn[reg.DEFECT_Y] = _position(old)
    assert reg.check_word(torn) != torn[reg.CHECK]


@pytest.mark.parametrize(
    "decision",
    [
        ACCEPT,
        # A position on a non-REJECT decision is never shown: only a REJECT has a part to pick.
        Decision(Verdict.ACCEPT, ("ACCEPT: no defect",), robot_position=AT),
        MODEL_FAULT,
        Decision(Verdict.REJECT, ("REJECT: scratch 0.91",), top_class_id=0, top_confidence=0.91),
    ],
    ids=["accept", "accept-with-position", "error", "reject-without-calibration"],
)
def test_accept_error_and_reject_without_a_position_publish_0(decision: Decision) -> None:
    hs, _ = live()
    result(hs, trigger(hs, 7), decision)
    block = hs.snapshot()
    assert verdict_of(block) != VerdictCode.EMPTY
    assert _position(block) == (0, 0) and block[reg.CHECK] == reg.check_word(block)


def test_a_late_reject_publishes_late_without_a_position() -> None:
    hs, clock = live()
    part = trigger(hs, 9)
    clock.advance_ms(RobotLinkConfig().publish_budget_ms + 50)
    result(hs, part, REJECT_AT)
    block = hs.snapshot()
    assert verdict_of(block) == VerdictCode.LATE and block[reg.ERROR_CODE] == ErrorCode.TIMEOUT
    assert _position(block) == (0, 0)


def test_a_new_trigger_and_a_session_change_clear_the_position() -> None:
    hs, _ = live()
    result(hs, trigger(hs, 1), REJECT_AT)
    assert _position(hs.snapshot()) == AT_REGISTERS
    trigger(hs, 2)
    busy = hs.snapshot()
    assert _position(busy) == (0, 0) and busy[reg.RESULT_WORD] == 0
    assert busy[reg.CHECK] == reg.check_word(busy)
    result(hs, trigger(hs, 3), REJECT_AT)
    hs.on_robot_write(reg.SESSION, [999])
    assert _position(hs.snapshot()) == (0, 0)


def test_a_position_outside_the_range_publishes_0_keeps_the_reject_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hs, _ = live()
    far = Decision(
        Verdict.REJECT,
        ("REJECT: scratch",),
        top_class_id=0,
        top_confidence=0.9,
        robot_position=(10.0, 2000.0),
    )
    with caplog.at_level(logging.WARNING, logger="edge.robotlink.resultblock"):
        result(hs, trigger(hs, 5), far)
    block = hs.snapshot()
    assert verdict_of(block) == VerdictCode.REJECT and _position(block) == (0, 0)
    assert any(
        "part 5" in r.getMessage() and "2000.0 mm is outside" in r.getMessage() for r in caplog.records
    )


# ---- the transports ------------------------------------------------------------------------------------
def test_role_a_server_shows_the_position_in_the_same_read_as_the_result() -> None:
    with served(robot_heartbeat_required=False) as target:
        client = ModbusTcpClient("127.0.0.1", port=target.port, timeout=1, retries=0)
        assert client.connect()
        try:
            start = [0, 0, 7, 4321, int(reg.ControlBit.ENABLE)]  # the robot program's start block
            assert not client.write_registers(reg.TRIGGER_SEQ, start, device_id=1).isError()
            assert not client.write_register(reg.TRIGGER_SEQ, 12, device_id=1).isError()
            part = target.on_loop(lambda: next(e for e in target.events if getattr(e, "seq", None) == 12))
            target.on_loop(lambda: target.handshake.on_result(part.part_seq, REJECT_AT, 5.0, part.boot_id))
            block = list(client.read_holding_registers(0, count=reg.LINESIDE_COUNT, device_id=1).registers)
        finally:
            client.close()
    assert reg.split_result_word(block[reg.RESULT_WORD]) == (VerdictCode.REJECT, 12)
    assert _position(block) == AT_REGISTERS and block[reg.CHECK] == reg.check_word(block)


def test_role_b_client_writes_the_position_in_the_one_fc16_with_the_result() -> None:
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            part = await link.trigger(3)
            link.handshake.on_result(part.part_seq, REJECT_AT, 5.0, part.boot_id)
            rejected = reg.result_word(VerdictCode.REJECT, 3)
            await until(lambda: link.lineside()[reg.RESULT_WORD] == rejected, "the REJECT at the robot")
            await link.trigger(4)
            await until(lambda: link.lineside()[reg.TRIGGER_ACK_SEQ] == 4, "the next trigger's clear")
            writes = [values for _, _, values in robot.bank.blocks()]
            with_result = [w for w in writes if w[reg.RESULT_WORD] == rejected]
            assert with_result and all(_position(w) == AT_REGISTERS for w in with_result)
            assert all(_position(w) == (0, 0) for w in writes if w[reg.RESULT_WORD] != rejected)
            assert all(w[reg.CHECK] == reg.check_word(w) for w in writes)

    run(body())


# ---- end to end: `lineside calibrate robot`, `lineside run`, a robot reading the registers ----------------
def _calibrated_robot_station(tmp_path: Path) -> tuple[Path, int]:
    """The test station (defect box centre at (80, 60) px) with a robot plane of +100, +200 mm."""
    config, port = make_station(tmp_path, "gd", mode="robot")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("0,0,100,200\n150,0,250,200\n150,110,250,310\n0,110,100,310\n")
    cal = tmp_path / "station.json"
    frame = f"{FRAME_W}x{FRAME_H}"
    done = lineside("calibrate", "robot", "--pairs", str(pairs), "--frame", frame, "--out", str(cal))
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(config.read_text())
    data["recipes"][0]["calibration"] = str(cal)
    config.write_text(yaml.safe_dump(data))
    return config, port


def _robot_reads_result(client: ModbusTcpClient, seq: int, deadline_s: float = 5.0) -> list[int]:
    assert not client.write_register(reg.TRIGGER_SEQ, seq, device_id=1).isError()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        rr = client.read_holding_registers(0, count=reg.LINESIDE_COUNT, device_id=1)
        assert not rr.isError(), rr
        block = list(rr.registers)
        if (
            block[reg.RESULT_SEQ] == seq
            and block[reg.RESULT_WORD]
            and block[reg.CHECK] == reg.check_word(block)
        ):
            return block
        time.sleep(0.01)
    raise AssertionError(f"no result for trigger {seq} within {deadline_s} s")


@pytest.mark.slow
def test_calibrated_line_publishes_the_reject_position_to_the_robot_and_robot_sim_shows_it(
    tmp_path: Path,
) -> None:
    config, port = _calibrated_robot_station(tmp_path)
    with running_line(config):
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        end = time.monotonic() + 30
        while not client.connect():
            assert time.monotonic() < end, "Modbus server did not come up"
            time.sleep(0.1)
        try:
            while (
                not client.read_holding_registers(0, count=1, device_id=1).registers[0] & reg.StatusBit.READY
            ):
                assert time.monotonic() < end, "appliance never became READY"
                time.sleep(0.05)
            good, bad = _robot_reads_result(client, 201), _robot_reads_result(client, 202)
        finally:
            client.close()
        sim = subprocess.run(
            [
                sys.executable,
                "-m",
                "lineside.cli",
                "robot-sim",
                "--port",
                str(port),
                "--parts",
                "4",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert reg.split_result_word(good[reg.RESULT_WORD])[0] == VerdictCode.ACCEPT and _position(good) == (0, 0)
    assert reg.split_result_word(bad[reg.RESULT_WORD])[0] == VerdictCode.REJECT
    # The box centre (80, 60) px maps through the robot plane to (180, 260) mm.
    assert _position(bad) == AT_REGISTERS and defect_position(bad) == AT
    assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:]
    parts = [json.loads(line)["outcome"] for line in sim.stdout.splitlines() if '"kind": "part"' in line]
    assert len(parts) == 4 and {p["verdict"] for p in parts} == {VerdictCode.ACCEPT, VerdictCode.REJECT}
    for p in parts:
        want = list(AT) if p["verdict"] == VerdictCode.REJECT else None
        assert p["robot_position_mm"] == want, p


def test_robot_sim_text_line_names_the_position() -> None:
    """The robot-sim line for a part with a position says where (no line needed: the printer alone)."""
    out = StringIO()
    outcome = PartOutcome(0, 5, 1, "REJECT", "verdict", "appliance REJECT", 4.0, 2, 0, 1, 900, None, AT)
    _print_part(outcome, out)
    assert "verdict REJECT, defect at (180.0, 260.0) mm: appliance REJECT" in out.getvalue()
