"""Role (a) against Modbus stacks that are not pymodbus: mbpoll (libmodbus, a Debian package) and
modbus-tk (FC23 read/write in one request). Skipped, saying why, when a peer is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from edge.judge.inspection import Decision, Verdict
from edge.robotlink import registers as reg
from edge.robotlink.events import TriggerRequested
from edge.robotlink.registers import ControlBit, StatusBit, VerdictCode
from tests.debian import require_debian
from tests.test_robotlink_fuzz import Target, served


@pytest.fixture
def mbpoll_installed() -> None:
    """Debian's mbpoll, installed by the test command itself where it can be (else a loud skip)."""
    require_debian("mbpoll", programs=("mbpoll",))


needs_mbpoll = pytest.mark.usefixtures("mbpoll_installed")


def mbpoll(port: int, first: int, *values: int, count: int = 1) -> subprocess.CompletedProcess[str]:
    """Read `count` holding registers from `first` once, or write `values` there (FC6/FC16)."""
    program = shutil.which("mbpoll")
    assert program is not None
    args = [program, "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-t", "4", "-r", str(first)]
    if values:
        args += ["127.0.0.1", *map(str, values)]
    else:
        args += ["-c", str(count), "-1", "127.0.0.1"]
    return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)


def mbpoll_read(port: int, first: int, count: int) -> list[int]:
    proc = mbpoll(port, first, count=count)
    assert proc.returncode == 0, proc.stderr
    values = dict(re.findall(r"^\[(\d+)\]:\s+(-?\d+)$", proc.stdout, re.MULTILINE))
    return [int(values[str(first + i)]) for i in range(count)]


def _without_heartbeat(block: list[int]) -> list[int]:
    return [v for i, v in enumerate(block) if i != reg.HEARTBEAT]


@needs_mbpoll
def test_mbpoll_reads_the_lineside_block_with_a_matching_check_word() -> None:
    with served() as target:
        block = mbpoll_read(target.port, 0, reg.LINESIDE_COUNT)
        assert block[reg.BOOT_ID] == target.handshake.boot_id
        assert 1 <= block[reg.HEARTBEAT] <= reg.SEQ_MAX
        assert block[reg.CHECK] == reg.check_word(block)


@needs_mbpoll
def test_mbpoll_reads_the_alarm_register_and_cannot_write_it() -> None:
    with served() as target:
        target.on_loop(lambda: setattr(target.handshake, "alarm_word", int(reg.AlarmBit.CLASS_RATE)))
        whole = mbpoll_read(target.port, 0, reg.BLOCK_COUNT)
        assert whole[reg.ALARM] == reg.AlarmBit.CLASS_RATE and whole[reg.STATUS] & StatusBit.ALARM_WARNING
        assert mbpoll_read(target.port, reg.ALARM, 1) == [int(reg.AlarmBit.CLASS_RATE)]
        assert mbpoll(target.port, reg.ALARM, 0).returncode != 0  # read-only: exception 02
        assert mbpoll_read(target.port, reg.ALARM, 1) == [int(reg.AlarmBit.CLASS_RATE)]


@needs_mbpoll
def test_mbpoll_as_the_robot_drives_a_whole_trigger_and_result_handshake() -> None:
    with served(robot_heartbeat_required=False) as target:
        port = target.port
        assert mbpoll(port, reg.TRIGGER_SEQ, 0, 0, 7, 4321, int(ControlBit.ENABLE)).returncode == 0  # FC16
        assert mbpoll(port, reg.TRIGGER_SEQ, 5).returncode == 0  # FC6: the trigger
        (trigger,) = [
            e for e in target.on_loop(lambda: list(target.events)) if isinstance(e, TriggerRequested)
        ]
        assert trigger.seq == 5
        busy = mbpoll_read(port, 0, reg.LINESIDE_COUNT)
        assert busy[reg.TRIGGER_ACK_SEQ] == 5 and busy[reg.STATUS] & StatusBit.BUSY
        accept = Decision(Verdict.ACCEPT, ("ACCEPT: no defect",))
        target.on_loop(lambda: target.handshake.on_result(trigger.part_seq, accept, 3.0, trigger.boot_id))
        done = mbpoll_read(port, 0, reg.LINESIDE_COUNT)
    assert done[reg.RESULT_WORD] == reg.result_word(VerdictCode.ACCEPT, 5) and done[reg.RESULT_SEQ] == 5
    assert done[reg.CHECK] == reg.check_word(done) and not done[reg.STATUS] & StatusBit.BUSY


@needs_mbpoll
@pytest.mark.parametrize("values", [(0x5005,), (0x5005, 5)], ids=["FC6", "FC16"])
def test_mbpoll_write_into_the_read_only_block_is_refused_and_changes_nothing(
    values: tuple[int, ...],
) -> None:
    with served() as target:
        before = mbpoll_read(target.port, 0, reg.BLOCK_COUNT)
        proc = mbpoll(target.port, reg.RESULT_WORD, *values)
        after = mbpoll_read(target.port, 0, reg.BLOCK_COUNT)
    assert proc.returncode != 0 and "Illegal data address" in proc.stderr
    assert _without_heartbeat(after) == _without_heartbeat(before)


# ---- modbus-tk: FC23, one request that writes and then reads (how UR's combined signal works) ----------
def _tk(module: str) -> Any:
    return pytest.importorskip(
        f"modbus_tk.{module}", reason="modbus-tk not installed (pip install modbus-tk)"
    )


def _tk_master(target: Target) -> Any:
    return _tk("modbus_tcp").TcpMaster("127.0.0.1", target.port, timeout_in_sec=1.0)


def _fc23(
    master: Any, write_first: int, values: list[int], read_count: int = reg.LINESIDE_COUNT
) -> list[int]:
    reply = master.execute(
        1,
        _tk("defines").READ_WRITE_MULTIPLE_REGISTERS,
        0,
        read_count,
        output_value=values,
        write_starting_address_fc23=write_first,
    )
    return list(reply)


def test_modbus_tk_fc23_trigger_write_is_acknowledged_in_the_same_reply() -> None:
    with served(robot_heartbeat_required=False) as target:
        master = _tk_master(target)
        try:
            _fc23(master, reg.TRIGGER_SEQ, [0, 0, 3, 999, int(ControlBit.ENABLE)])
            block = _fc23(master, reg.TRIGGER_SEQ, [42])
        finally:
            master.close()
    # The write is handled before the read of the same request: no stale result can be read back.
    assert block[reg.TRIGGER_ACK_SEQ] == 42 and block[reg.STATUS] & StatusBit.BUSY
    assert block[reg.RESULT_WORD] == 0 and block[reg.CHECK] == reg.check_word(block)


def test_modbus_tk_fc23_heartbeat_writes_light_robot_heartbeat_ok() -> None:
    with served() as target:
        master = _tk_master(target)
        try:
            status = [_fc23(master, reg.ROBOT_HEARTBEAT, [beat])[reg.STATUS] for beat in (1, 2, 3)]
        finally:
            master.close()
    assert not status[0] & StatusBit.ROBOT_HEARTBEAT_OK  # a first value proves nothing
    assert status[-1] & StatusBit.ROBOT_HEARTBEAT_OK


def test_modbus_tk_fc23_write_into_the_read_only_block_is_refused() -> None:
    with served() as target:
        master = _tk_master(target)
        try:
            before = _fc23(master, reg.ROBOT_HEARTBEAT, [1])
            with pytest.raises(_tk("modbus").ModbusError) as refused:
                _fc23(master, reg.RESULT_WORD, [0x5005])
            after = _fc23(master, reg.ROBOT_HEARTBEAT, [1])  # the same value: no robot-side change
        finally:
            master.close()
    assert refused.value.get_exception_code() == 2  # ILLEGAL DATA ADDRESS
    assert _without_heartbeat(after) == _without_heartbeat(before)
