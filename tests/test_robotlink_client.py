"""Role (b): lineside's Modbus TCP client against independent robot-side servers (pyModbusTCP, modbus-tk)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from modbus_tk import defines as mtk_defines  # type: ignore[import-untyped]
from modbus_tk import modbus_tcp
from pydantic import ValidationError
from pyModbusTCP.server import DataBank, ModbusServer  # type: ignore[import-untyped]

from edge.errors import ErrorCode
from edge.judge.inspection import Decision, Verdict
from edge.robotlink import registers as reg
from edge.robotlink.client import RobotLinkClient
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event, Finalised, TriggerRequested
from edge.robotlink.handshake import Handshake
from edge.robotlink.registers import StatusBit, VerdictCode
from tests.line import free_port

# modbus-tk's server loop calls Event.isSet(), deprecated since Python 3.10.
pytestmark = pytest.mark.filterwarnings("ignore:isSet:DeprecationWarning")

BASE = 128  # UR general-purpose holding registers 128..255
UNIT = 255
SESSION = 4321
ACCEPT = Decision(Verdict.ACCEPT, ("ACCEPT: no defect",))
REJECT = Decision(Verdict.REJECT, ("REJECT: scratch",), top_class_id=0, top_confidence=0.9)


class Robot(Protocol):
    """What the tests need of a robot: its own register access (local, as its program does) and its server."""

    port: int

    def write(self, offset: int, values: list[int]) -> None: ...
    def read(self, offset: int, count: int) -> list[int]: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class RecordingBank(DataBank):  # type: ignore[misc]
    """pyModbusTCP registers recording each write arriving over the network (client port, address, values)."""

    def __init__(self, h_regs_size: int = 0x10000) -> None:
        super().__init__(coils_size=1, d_inputs_size=1, h_regs_size=h_regs_size, i_regs_size=1)
        self.network_writes: list[tuple[int, int, list[int]]] = []
        self._record = threading.Lock()

    def set_holding_registers(self, address: int, word_list: list[int], srv_info: Any = None) -> bool | None:
        done: bool | None = super().set_holding_registers(address, word_list, srv_info)
        if done and srv_info is not None:
            with self._record:
                self.network_writes.append((srv_info.client.port, address, [int(w) for w in word_list]))
        return done

    def writes(self) -> list[tuple[int, int, list[int]]]:
        with self._record:
            return list(self.network_writes)

    def blocks(self) -> list[tuple[int, int, list[int]]]:
        """The writes of lineside's 0-15 block (ALARM, offset 22, is written apart)."""
        return [w for w in self.writes() if w[1] == BASE]

    def alarms(self) -> list[int]:
        """The values written to ALARM (offset 22), in order."""
        return [values[0] for _, address, values in self.writes() if address == BASE + reg.ALARM]


@dataclass
class PyModbusTcpRobot:
    """A robot whose Modbus server is pyModbusTCP's (threaded; answers any unit id)."""

    port: int
    bank: RecordingBank = field(default_factory=RecordingBank)
    server: Any = None

    def write(self, offset: int, values: list[int]) -> None:
        assert self.bank.set_holding_registers(BASE + offset, values)

    def read(self, offset: int, count: int) -> list[int]:
        values: list[int] = self.bank.get_holding_registers(BASE + offset, count)
        return values

    def start(self) -> None:
        self.server = ModbusServer("127.0.0.1", self.port, no_block=True, data_bank=self.bank)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


@dataclass
class ModbusTkRobot:
    """A robot whose Modbus server is modbus-tk's (single-threaded select loop; unit id 255 only)."""

    port: int
    server: Any = None
    slave: Any = None

    def __post_init__(self) -> None:
        self.server = modbus_tcp.TcpServer(port=self.port, address="127.0.0.1")
        self.slave = self.server.add_slave(UNIT)
        self.slave.add_block("regs", mtk_defines.HOLDING_REGISTERS, 0, 256)

    def write(self, offset: int, values: list[int]) -> None:
        self.slave.set_values("regs", BASE + offset, values)

    def read(self, offset: int, count: int) -> list[int]:
        return [int(v) for v in self.slave.get_values("regs", BASE + offset, count)]

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Link:
    robot: Robot
    handshake: Handshake
    client: RobotLinkClient
    events: list[Event]

    def lineside(self) -> list[int]:
        return self.robot.read(0, reg.LINESIDE_COUNT)

    def triggers(self) -> list[TriggerRequested]:
        return [e for e in self.events if isinstance(e, TriggerRequested)]

    async def trigger(self, seq: int) -> TriggerRequested:
        self.robot.write(reg.TRIGGER_SEQ, [seq])
        await until(lambda: any(t.seq == seq for t in self.triggers()), f"TriggerRequested({seq})")
        return next(t for t in self.triggers() if t.seq == seq)


def run(coro: Awaitable[Any]) -> Any:
    """Run one test body on a fresh loop, bounded so a hang fails instead of stalling the suite."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(bounded())


async def until(check: Callable[[], bool], what: str, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def robot_heartbeat(robot: Robot, stop: asyncio.Event) -> None:
    """The robot program's cycle: ROBOT_HEARTBEAT +1 every 50 ms."""
    beat = 1
    while not stop.is_set():
        beat = reg.next_seq(beat)
        robot.write(reg.ROBOT_HEARTBEAT, [beat])
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


def client_config(port: int, **overrides: Any) -> RobotLinkConfig:
    settings: dict[str, Any] = {
        "role": "client",
        "robot_host": "127.0.0.1",
        "robot_port": port,
        "base": BASE,
        "unit_id": UNIT,
        **overrides,
    }
    return RobotLinkConfig(**settings)


@contextlib.asynccontextmanager
async def linked(
    robot: Robot, *, online: bool = True, beating: bool = True, **overrides: Any
) -> AsyncIterator[Link]:
    """The robot's server up, its program online (new session, ENABLE, heartbeat), lineside's client on."""
    await asyncio.to_thread(robot.start)
    if online:
        robot.write(reg.TRIGGER_SEQ, [0, 0, 1, SESSION, reg.ControlBit.ENABLE, 0])
    cfg = client_config(robot.port, **overrides)
    handshake = Handshake(cfg, time.monotonic)
    handshake.set_ready(model_ready=True, camera_ready=True)
    events: list[Event] = []
    client = RobotLinkClient(cfg, handshake, events.extend)
    stop = asyncio.Event()
    await client.start()
    tasks = [asyncio.create_task(client.run_ticks(stop))]
    if beating:
        tasks.append(asyncio.create_task(robot_heartbeat(robot, stop)))
    try:
        yield Link(robot, handshake, client, events)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 2)
        await client.stop()
        await asyncio.to_thread(robot.stop)


async def connected_and_ready(link: Link) -> None:
    """Connected, and the robot's heartbeat seen moving (so triggers are accepted)."""
    await until(lambda: link.client.connected, "the client to connect")
    await until(lambda: link.lineside()[reg.STATUS] & StatusBit.ROBOT_HEARTBEAT_OK != 0, "ROBOT_HEARTBEAT_OK")


def check_is_consistent(block: list[int]) -> bool:
    return block[reg.CHECK] == reg.check_word(block)


def test_lineside_block_appears_at_base_128_with_a_moving_heartbeat():
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            first = link.lineside()
            await asyncio.sleep(0.35)
            second = link.lineside()
            assert first[reg.BOOT_ID] == second[reg.BOOT_ID] == link.handshake.boot_id != 0
            assert second[reg.HEARTBEAT] != first[reg.HEARTBEAT] and 0 not in (first[1], second[1])
            assert second[reg.STATUS] & StatusBit.READY
            assert check_is_consistent(second)
            assert link.client.counters.polls >= 10  # ~15 ms poll period
            # One writer per range: lineside only ever wrote its 16 registers at the base, in whole blocks,
            # and ALARM (offset 22) apart: once at the connection (no alarm: 0), since it did not change.
            writes = {(address, len(values)) for _, address, values in robot.bank.writes()}
            assert writes == {(BASE, 16), (BASE + reg.ALARM, 1)}
            assert robot.bank.alarms() == [0]
            assert robot.bank.get_holding_registers(0, BASE) == [0] * BASE

    run(body())


def test_role_b_writes_a_line_alarm_to_its_register_apart_from_the_block_and_sets_status_bit_6():
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            link.handshake.alarm_word = int(reg.AlarmBit.SCORE)  # the worker sets it from the alarm state
            await until(lambda: link.lineside()[reg.STATUS] & StatusBit.ALARM_WARNING != 0, "ALARM_WARNING")
            assert check_is_consistent(link.lineside())  # a warning: outside CHECK
            alarm = BASE + reg.ALARM
            await until(lambda: robot.read(reg.ALARM, 1) == [int(reg.AlarmBit.SCORE)], "ALARM written")
            # ALARM travels on its own write, after the block (docs/robot-link.md): never inside it.
            assert {(address, len(values)) for _, address, values in robot.bank.writes()} == {
                (BASE, 16),
                (alarm, 1),
            }
            link.handshake.alarm_word = 0
            await until(lambda: link.lineside()[reg.STATUS] & StatusBit.ALARM_WARNING == 0, "the bit cleared")
            await until(lambda: robot.read(reg.ALARM, 1) == [0], "ALARM cleared")
            assert robot.bank.alarms() == [0, int(reg.AlarmBit.SCORE), 0]  # written once per change, no more

    run(body())


def test_trigger_yields_one_request_and_result_word_never_disagrees_with_check():
    robot = PyModbusTcpRobot(free_port())
    reads: list[list[int]] = []
    done = threading.Event()

    def robot_reads_in_a_tight_loop() -> None:
        deadline = time.monotonic() + 5
        while not done.is_set() and time.monotonic() < deadline:
            reads.append(robot.read(0, reg.LINESIDE_COUNT))
            # Let the link's threads have the GIL between reads: a pure-Python loop that never yields held it
            # for whole switch intervals and, on a loaded CI machine, starved the link past its 3 s wait.
            time.sleep(0)

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            reader = threading.Thread(target=robot_reads_in_a_tight_loop, daemon=True)
            reader.start()
            part = await link.trigger(5)
            await asyncio.sleep(0.05)
            link.handshake.on_result(part.part_seq, ACCEPT, 20.0, part.boot_id)
            accept = reg.result_word(VerdictCode.ACCEPT, 5)
            await until(lambda: link.lineside()[reg.RESULT_WORD] == accept, "ACCEPT at the robot")
            await asyncio.sleep(0.1)
            done.set()
            reader.join(2)
            assert [t.seq for t in link.triggers()] == [5]

    run(body())
    assert len(reads) > 200
    torn = [r for r in reads if not check_is_consistent(r)]
    assert torn == [], f"{len(torn)} reads where RESULT_WORD/CHECK disagree, e.g. {torn[0]}"
    words = {r[reg.RESULT_WORD] for r in reads}
    assert reg.result_word(VerdictCode.ACCEPT, 5) in words  # the tight loop saw the result change
    assert all(check_is_consistent(values) for _, _, values in robot.bank.blocks())


def test_trigger_seq_left_in_place_never_triggers_again():
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            part = await link.trigger(7)
            link.handshake.on_result(part.part_seq, REJECT, 20.0, part.boot_id)
            polls = link.client.counters.polls
            for _ in range(10):  # a robot that rewrites its outputs every cycle
                robot.write(reg.TRIGGER_SEQ, [7])
                await asyncio.sleep(0.03)
            assert link.client.counters.polls - polls >= 8
            assert [t.seq for t in link.triggers()] == [7]
            assert link.lineside()[reg.RESULT_WORD] == reg.result_word(VerdictCode.REJECT, 7)
            await link.trigger(8)
            assert [t.seq for t in link.triggers()] == [7, 8]

    run(body())


def test_trigger_seq_already_set_when_lineside_starts_is_not_a_trigger():
    robot = PyModbusTcpRobot(free_port())
    robot.write(reg.TRIGGER_SEQ, [9])  # left over from before this lineside process

    async def body() -> None:
        async with linked(robot, online=False) as link:
            robot.write(reg.SESSION, [SESSION, reg.ControlBit.ENABLE])
            await connected_and_ready(link)
            await asyncio.sleep(0.15)
            assert link.triggers() == []
            assert link.lineside()[reg.TRIGGER_ACK_SEQ] == 0
            await link.trigger(10)
            assert [t.seq for t in link.triggers()] == [10]

    run(body())


async def outage(link: Link, robot: PyModbusTcpRobot, seconds: float) -> tuple[int, int]:
    """Stop the robot's server until the client notices, wait, restart it; (connect attempts, new port)."""
    ports_before = {port for port, _, _ in robot.bank.writes()}
    await asyncio.to_thread(robot.stop)
    await until(lambda: not link.client.connected, "the client to notice the robot is gone")
    attempts = link.client.counters.connect_attempts
    await asyncio.sleep(seconds)
    attempts = link.client.counters.connect_attempts - attempts
    await asyncio.to_thread(robot.start)
    await until(lambda: link.client.connected, "the client to reconnect", timeout_s=4)
    new_ports = {port for port, _, _ in robot.bank.writes()} - ports_before
    assert len(new_ports) == 1
    return attempts, new_ports.pop()


def test_robot_restart_reconnects_with_backoff_and_first_writes_a_cleared_block():
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        # A long staleness threshold keeps the old result in the handshake: only the reconnect rule hides it.
        async with linked(robot, robot_heartbeat_timeout_ms=10000) as link:
            await connected_and_ready(link)
            part = await link.trigger(1)
            link.handshake.on_result(part.part_seq, ACCEPT, 20.0, part.boot_id)
            accept = reg.result_word(VerdictCode.ACCEPT, 1)
            await until(lambda: link.lineside()[reg.RESULT_WORD] == accept, "ACCEPT before the outage")

            attempts, port = await outage(link, robot, 1.0)

            # Backoff 0.2, 0.4, 0.8 s: a handful of attempts in a second, not a busy loop.
            assert 2 <= attempts <= 6, attempts
            assert link.client.counters.reconnects == 1 and link.client.counters.link_losses == 1
            await asyncio.sleep(0.3)
            on_new = [values for p, _, values in robot.bank.blocks() if p == port]
            first = on_new[0]
            assert first[reg.RESULT_FIRST :] == [0] * 7 + [reg.check_word(first)] + [0] * 5
            assert first[reg.BOOT_ID] == link.handshake.boot_id and first[reg.HEARTBEAT] != 0
            assert first[reg.STATUS] & (StatusBit.RESULT_VALID | StatusBit.BUSY) == 0
            # The link loss cleared the handshake's result too: nothing old is left to replay.
            assert link.handshake.snapshot()[reg.RESULT_WORD] == 0
            assert all(v[reg.RESULT_WORD] == 0 and v[reg.TRIGGER_ACK_SEQ] == 0 for v in on_new)
            assert len(on_new) >= 2 and link.lineside()[reg.RESULT_WORD] == 0
            # The handshake already cleared it: the client's hold-back (a second guard) had nothing to hold.
            assert link.client.counters.withheld == 0

    run(body())


def test_part_in_flight_during_an_outage_never_shows_accept():
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        # A long budget and staleness threshold, so that only the reconnect rule can hide the result.
        async with linked(robot, publish_budget_ms=5000, robot_heartbeat_timeout_ms=10000) as link:
            await connected_and_ready(link)
            part = await link.trigger(2)
            await asyncio.to_thread(robot.stop)
            await until(lambda: not link.client.connected, "the client to notice the robot is gone")
            # The link loss failed the part in flight in the ledger; its late ACCEPT is dropped.
            lost = [e for e in link.events if isinstance(e, Finalised) and e.part_seq == part.part_seq]
            assert [(f.verdict, f.error) for f in lost] == [(Verdict.FAULT, ErrorCode.LINK)]
            link.handshake.on_result(part.part_seq, ACCEPT, 20.0, part.boot_id)
            accept = reg.result_word(VerdictCode.ACCEPT, 2)
            assert link.handshake.snapshot()[reg.RESULT_WORD] == 0
            await asyncio.sleep(0.3)
            await asyncio.to_thread(robot.start)
            await until(lambda: link.client.connected, "the client to reconnect", timeout_s=4)
            await asyncio.sleep(0.3)
            assert link.lineside()[reg.RESULT_WORD] == 0

            nxt = await link.trigger(3)
            link.handshake.on_result(nxt.part_seq, ACCEPT, 20.0, nxt.boot_id)
            accept3 = reg.result_word(VerdictCode.ACCEPT, 3)
            await until(lambda: link.lineside()[reg.RESULT_WORD] == accept3, "the next part's result")
            assert accept not in {values[reg.RESULT_WORD] for _, _, values in robot.bank.blocks()}

    run(body())


def test_stop_publishes_the_shutdown_error_for_the_part_in_flight():
    robot = PyModbusTcpRobot(free_port())

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            await link.trigger(4)
            link.events.extend(link.handshake.shutdown())
            await link.client.stop()
            assert not link.client.connected
            block = link.lineside()
            assert reg.split_result_word(block[reg.RESULT_WORD]) == (VerdictCode.ERROR, 4)
            assert check_is_consistent(block) and block[reg.STATUS] & StatusBit.READY == 0

    run(body())


def test_wrong_base_is_an_exception_reply_and_the_link_never_counts_as_up():
    robot = PyModbusTcpRobot(free_port(), bank=RecordingBank(h_regs_size=100))  # nothing mapped at 128

    async def body() -> None:
        async with linked(robot, online=False, beating=False) as link:
            await asyncio.sleep(0.5)
            counters = link.client.counters
            assert not link.client.connected and link.client.detail()["connected"] is False
            assert counters.error_replies >= 2 and counters.writes == 0 and counters.polls == 0
            assert 2 <= counters.connect_attempts <= 5  # backed off, not hammering

    run(body())


def test_modbus_tk_robot_with_unit_255_gets_the_block_and_a_result():
    robot = ModbusTkRobot(free_port())

    async def body() -> None:
        async with linked(robot) as link:
            await connected_and_ready(link)
            part = await link.trigger(11)
            link.handshake.on_result(part.part_seq, REJECT, 20.0, part.boot_id)
            reject = reg.result_word(VerdictCode.REJECT, 11)
            await until(lambda: link.lineside()[reg.RESULT_WORD] == reject, "REJECT at the robot")
            block = link.lineside()
            assert check_is_consistent(block) and block[reg.RESULT_SEQ] == 11
            assert block[reg.DEFECT_CODE] == 1 and block[reg.SCORE] == 900

    run(body())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"robot_host": None}, "robot_host is required"),
        ({"unit_id": 0}, "broadcast"),
        ({"reconnect_delay_s": 3.0, "reconnect_delay_max_s": 2.0}, "reconnect_delay_s"),
        ({"poll_period_ms": 400, "robot_heartbeat_timeout_ms": 1000}, "3 x poll_period_ms"),
        ({"poll_period_ms": 500, "publish_budget_ms": 450}, "publish_budget_ms"),
        ({"timeout_s": 2.0}, "timeout_s"),
    ],
)
def test_client_config_refuses_inconsistent_settings(overrides: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        client_config(502, **overrides)


def test_client_config_defaults_suit_a_ur_robot():
    cfg = client_config(502)
    assert (cfg.poll_period_ms, cfg.timeout_s, cfg.reconnect_delay_s, cfg.reconnect_delay_max_s) == (
        15,
        0.3,
        0.2,
        2.0,
    )
    with pytest.raises(Exception, match="role client"):
        RobotLinkClient(RobotLinkConfig(), Handshake(RobotLinkConfig(), time.monotonic), lambda _: None)
