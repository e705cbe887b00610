"""The line interlock output against a real Modbus server playing the PLC, and as a local command:
raised at start (fail closed), following the robot heartbeat, re-asserted, retried, never blocking."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event, InterlockChanged
from edge.robotlink.handshake import Handshake
from edge.robotlink.interlock import (
    CommandInterlockConfig,
    LineInterlock,
    ModbusInterlockConfig,
    line_interlock,
)
from edge.robotlink.server import RobotLinkServer
from tests.line import free_port as free_line_port
from tests.line import make_station, running_line

COIL = 3  # the PLC's run-permit coil (and register) in these tests


def run(coro: Awaitable[Any]) -> Any:
    """Run one test body on a fresh loop, bounded so a hang fails instead of stalling the suite."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


class Plc:
    """A pymodbus server playing the PLC: 16 coils and 16 holding registers with power-on values."""

    def __init__(self, coil: bool = False, register: int = 0) -> None:
        bits = [SimData(0, count=16, values=coil, datatype=DataType.BITS)]
        words = [SimData(0, count=16, values=register, datatype=DataType.REGISTERS)]
        self.device = SimDevice(id=0, simdata=(bits, bits, words, words))
        self.server: ModbusTcpServer | None = None

    async def start(self, port: int = 0) -> int:
        self.server = ModbusTcpServer(self.device, address=("127.0.0.1", port))
        await self.server.serve_forever(background=True)
        assert isinstance(self.server.transport, asyncio.Server)
        return int(self.server.transport.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def coil(self) -> bool:
        assert self.server is not None
        return bool((await self.server.async_getValues(1, 1, COIL, 1))[0])

    async def register(self) -> int:
        assert self.server is not None
        return int((await self.server.async_getValues(1, 3, COIL, 1))[0])


async def eventually(read: Callable[[], Awaitable[object]], want: object, timeout_s: float = 3.0) -> bool:
    """Poll `read()` every 20 ms until it returns `want`, for at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await read() == want:
            return True
        await asyncio.sleep(0.02)
    return await read() == want


@contextlib.asynccontextmanager
async def running(interlock: LineInterlock) -> AsyncIterator[LineInterlock]:
    stop = asyncio.Event()
    task = asyncio.create_task(interlock.run(stop))
    try:
        yield interlock
    finally:
        stop.set()
        await asyncio.wait_for(task, 3)
        await interlock.close()


def plc_interlock(port: int, **overrides: Any) -> LineInterlock:
    cfg = ModbusInterlockConfig(host="127.0.0.1", port=port, address=COIL, retry_min_ms=50, **overrides)
    interlock = line_interlock(cfg)
    assert interlock is not None
    return interlock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- Modbus output ---------------------------------------------------------------------------------------


def test_interlock_is_raised_at_start_before_the_robot_is_seen() -> None:
    async def body() -> None:
        plc = Plc(coil=True)  # the PLC powered up with the run permit on
        port = await plc.start()
        try:
            async with running(plc_interlock(port)) as interlock:
                assert await eventually(plc.coil, False)
                assert interlock.applied is True and interlock.raised
        finally:
            await plc.stop()

    run(body())


def test_plc_coil_drops_when_the_robot_heartbeat_stops_and_returns_when_it_moves() -> None:
    async def body() -> None:
        plc = Plc()
        plc_port = await plc.start()
        cfg = RobotLinkConfig(
            port=0,
            heartbeat_period_ms=50,
            robot_heartbeat_period_ms=50,
            robot_heartbeat_timeout_ms=300,
            interlock=ModbusInterlockConfig(host="127.0.0.1", port=plc_port, address=COIL),
        )
        interlock = line_interlock(cfg.interlock)
        assert interlock is not None
        handshake = Handshake(cfg, time.monotonic)

        def apply(events: list[Event]) -> None:  # what the robot link worker does with the events
            for event in events:
                if isinstance(event, InterlockChanged):
                    interlock.set(event.raised, event.reason)

        server = RobotLinkServer(cfg, handshake, apply)
        await server.start()
        stop = asyncio.Event()
        ticks = asyncio.create_task(server.run_ticks(stop))
        robot = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, retries=0)
        beat = 0

        async def robot_alive_for(seconds: float) -> None:
            nonlocal beat
            for _ in range(int(seconds / 0.05)):
                beat = reg.next_seq(beat)
                assert not (await robot.write_register(reg.ROBOT_HEARTBEAT, beat, device_id=1)).isError()
                await asyncio.sleep(0.05)

        try:
            assert await robot.connect()
            async with running(interlock):
                assert await eventually(plc.coil, False)  # no robot yet: raised
                await robot_alive_for(0.3)
                assert await eventually(plc.coil, True)
                assert not handshake.interlock_raised
                # The robot stops writing: stale after 300 ms, the PLC's run permit drops.
                assert await eventually(plc.coil, False, timeout_s=2.0)
                assert handshake.interlock_raised
                await robot_alive_for(0.3)
                assert await eventually(plc.coil, True)
                assert interlock.counters.changes == 3
                assert interlock.counters.failures == 0
        finally:
            robot.close()
            stop.set()
            await asyncio.wait_for(ticks, 2)
            await server.stop()
            await plc.stop()

    run(body())


def test_holding_register_output_writes_the_configured_values() -> None:
    async def body() -> None:
        plc = Plc(register=7)
        port = await plc.start()
        try:
            interlock = plc_interlock(
                port, table="holding_register", raised_value=0x0BAD, lowered_value=0x0600
            )
            async with running(interlock):
                assert await eventually(plc.register, 0x0BAD)
                interlock.set(False, "robot heartbeat moving")
                assert await eventually(plc.register, 0x0600)
            assert await plc.register() == 0x0BAD  # close() leaves it raised
        finally:
            await plc.stop()

    run(body())


def test_a_restarted_plc_gets_the_state_again_from_the_periodic_reassertion() -> None:
    async def body() -> None:
        plc = Plc()
        port = await plc.start()
        try:
            async with running(plc_interlock(port, reassert_period_ms=100)) as interlock:
                interlock.set(False, "robot heartbeat moving")
                assert await eventually(plc.coil, True)
                await plc.stop()
                plc = Plc()  # power-on memory: run permit off
                await plc.start(port)
                assert await plc.coil() is False
                assert await eventually(plc.coil, True)  # re-asserted without any new event
        finally:
            await plc.stop()

    run(body())


def test_an_unreachable_plc_is_counted_and_retried_until_it_answers() -> None:
    async def body() -> None:
        port = free_port()
        plc = Plc(coil=True)
        try:
            async with running(plc_interlock(port, timeout_ms=100)) as interlock:
                for _ in range(100):
                    if interlock.counters.failures >= 2:
                        break
                    await asyncio.sleep(0.02)
                assert interlock.counters.failures >= 2
                assert interlock.applied is None
                assert interlock.last_error is not None and "cannot connect" in interlock.last_error
                await plc.start(port)
                assert await eventually(plc.coil, False)
                assert interlock.counters.consecutive_failures == 0
                assert interlock.applied is True
        finally:
            await plc.stop()

    run(body())


# ---- command output --------------------------------------------------------------------------------------


def write_state(path: Path, state: str) -> list[str]:
    return [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", str(path), state]


def command_interlock(raise_argv: list[str], lower_argv: list[str], **overrides: Any) -> LineInterlock:
    cfg = CommandInterlockConfig(raise_argv=raise_argv, lower_argv=lower_argv, retry_min_ms=50, **overrides)
    interlock = line_interlock(cfg)
    assert interlock is not None
    return interlock


def test_command_output_runs_the_raise_and_lower_programs(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def read() -> str:
        return state.read_text() if state.exists() else ""

    async def body() -> None:
        cmd = command_interlock(
            write_state(state, "raised"), write_state(state, "lowered"), reassert_period_ms=0
        )
        async with running(cmd) as interlock:
            assert await eventually(read, "raised")
            interlock.set(False, "robot heartbeat moving")
            assert await eventually(read, "lowered")
            interlock.set(True, "robot heartbeat stale")
            assert await eventually(read, "raised")
            state.unlink()
            await asyncio.sleep(0.3)
            assert not state.exists()  # reassert_period_ms 0: nothing runs without a change
            interlock.set(False, "robot heartbeat moving")
            assert await eventually(read, "lowered")
        assert await read() == "raised"  # close() raises it

    run(body())


def test_a_failing_command_is_counted_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        fails = [sys.executable, "-c", "import sys; print('relay busy', file=sys.stderr); sys.exit(3)"]
        async with running(command_interlock(fails, fails)) as interlock:
            for _ in range(150):
                if interlock.counters.failures >= 3:
                    break
                await asyncio.sleep(0.02)
            assert interlock.counters.failures >= 3
            assert interlock.applied is None
            assert interlock.last_error is not None
            assert "exited with 3: relay busy" in interlock.last_error

    run(body())
    errors = [r for r in caplog.records if r.name == "edge.robotlink.interlock" and r.levelname == "ERROR"]
    assert len(errors) == 1  # the first failure is logged; repeats are rate-limited (and counted)


def test_a_hung_command_is_killed_and_never_blocks_the_loop(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hangs = [
        sys.executable,
        "-c",
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(30)",
        str(pid_file),
    ]

    async def body() -> None:
        async with running(command_interlock(hangs, hangs, timeout_ms=300)) as interlock:
            loop_turns = 0
            t_end = time.monotonic() + 0.6
            while time.monotonic() < t_end:
                await asyncio.sleep(0.01)
                loop_turns += 1
            assert loop_turns >= 20  # the event loop kept turning while the command hung
            for _ in range(100):
                if interlock.counters.failures >= 1:
                    break
                await asyncio.sleep(0.02)
            assert interlock.counters.failures >= 1
            assert interlock.last_error is not None and "killed" in interlock.last_error
            pid = int(pid_file.read_text())
        await asyncio.sleep(0.1)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    run(body())


def test_a_missing_program_is_an_interlock_failure_not_a_crash(tmp_path: Path) -> None:
    async def body() -> None:
        missing = [str(tmp_path / "no-such-gpio-tool")]
        async with running(command_interlock(missing, missing)) as interlock:
            for _ in range(100):
                if interlock.counters.failures >= 1:
                    break
                await asyncio.sleep(0.02)
            assert interlock.last_error is not None and "cannot run" in interlock.last_error
            assert interlock.raised

    run(body())


# ---- configuration ---------------------------------------------------------------------------------------


def test_interlock_config_is_chosen_by_kind() -> None:
    cfg = RobotLinkConfig.model_validate(
        {"interlock": {"kind": "command", "raise_argv": ["relay", "off"], "lower_argv": ["relay", "on"]}}
    )
    assert isinstance(cfg.interlock, CommandInterlockConfig)
    assert RobotLinkConfig().interlock.kind == "none"
    assert line_interlock(RobotLinkConfig().interlock) is None


@pytest.mark.parametrize(
    ("interlock", "extra", "match"),
    [
        ({"kind": "modbus", "host": "plc", "address": 1, "raised_value": 0, "lowered_value": 5}, {}, "coil"),
        (
            {"kind": "modbus", "host": "plc", "address": 1, "raised_value": 1, "lowered_value": 1},
            {},
            "differ",
        ),
        ({"kind": "modbus", "host": "plc"}, {}, "address"),
        ({"kind": "gpio"}, {}, "kind"),
        (
            {"kind": "command", "raise_argv": ["a"], "lower_argv": ["b"]},
            {"robot_heartbeat_required": False},
            "heartbeat",
        ),
    ],
)
def test_bad_interlock_config_is_refused(
    interlock: dict[str, Any], extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RobotLinkConfig.model_validate({"interlock": interlock, **extra})


# ---- the real worker -------------------------------------------------------------------------------------


def _wait_file(path: Path, want: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text() == want:
            return True
        time.sleep(0.05)
    return path.exists() and path.read_text() == want


@pytest.mark.slow
def test_lineside_run_drives_the_interlock_and_serves_the_hmi_read_only(tmp_path: Path) -> None:
    state = tmp_path / "interlock"
    hmi_port = free_line_port()
    robot_link = {
        "robot_heartbeat_required": True,
        "hmi": {"port": hmi_port},
        "interlock": {
            "kind": "command",
            "raise_argv": write_state(state, "raised"),
            "lower_argv": write_state(state, "lowered"),
            "reassert_period_ms": 0,
        },
    }
    config, port = make_station(tmp_path, "g", mode="robot", extra={"robot_link": robot_link})
    with running_line(config) as line:
        assert _wait_file(state, "raised", 30), "".join(line.stderr[-20:])
        robot = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        hmi = ModbusTcpClient("127.0.0.1", port=hmi_port, timeout=1, retries=0)
        try:
            assert robot.connect() and hmi.connect()
            for beat in range(1, 6):
                assert not robot.write_register(reg.ROBOT_HEARTBEAT, beat, device_id=1).isError()
                time.sleep(0.1)
            assert _wait_file(state, "lowered", 5)
            seen = hmi.read_holding_registers(0, count=reg.BLOCK_COUNT, device_id=1)
            assert not seen.isError()
            assert seen.registers[reg.ROBOT_HEARTBEAT] == 5
            assert hmi.write_register(reg.TRIGGER_SEQ, 9, device_id=1).exception_code == 2
            assert _wait_file(state, "raised", 5)  # the robot stopped beating: stale after 1 s
        finally:
            robot.close()
            hmi.close()
        state.unlink()
        line.process.terminate()
        assert line.process.wait(30) == 0
    assert state.read_text() == "raised"  # stopping drives it raised once more
