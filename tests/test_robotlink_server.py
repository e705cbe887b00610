"""The robot link's Modbus TCP server against real clients on loopback: pymodbus and (if installed) mbpoll."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from edge.errors import LinesideError
from edge.judge.inspection import Decision, Verdict
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event, Finalised, TriggerRequested
from edge.robotlink.handshake import Handshake
from edge.robotlink.registers import StatusBit, VerdictCode
from edge.robotlink.server import RobotLinkServer

ACCEPT = Decision(Verdict.ACCEPT, ("ACCEPT: no defect",))


@dataclass
class Link:
    handshake: Handshake
    server: RobotLinkServer
    client: AsyncModbusTcpClient
    events: list[Event]

    async def read(self, address: int = 0, count: int = reg.LINESIDE_COUNT, device_id: int = 1) -> list[int]:
        rr = await self.client.read_holding_registers(address, count=count, device_id=device_id)
        assert not rr.isError(), rr
        return list(rr.registers)

    async def write(self, address: int, values: list[int]) -> None:
        rr = await self.client.write_registers(address, values, device_id=1)
        assert not rr.isError(), rr


def run(coro: Awaitable[Any]) -> Any:
    """Run one test body on a fresh loop, bounded so a hang fails instead of stalling the suite."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def running_link(**overrides: Any) -> AsyncIterator[Link]:
    cfg = RobotLinkConfig(port=0, **overrides)
    handshake = Handshake(cfg, time.monotonic)
    handshake.set_ready(model_ready=True, camera_ready=True)
    events: list[Event] = []
    server = RobotLinkServer(cfg, handshake, events.extend)
    await server.start()
    stop = asyncio.Event()
    ticks = asyncio.create_task(server.run_ticks(stop))
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, retries=0)
    try:
        assert await client.connect()
        yield Link(handshake, server, client, events)
    finally:
        client.close()
        stop.set()
        await asyncio.wait_for(ticks, 2)
        await server.stop()


async def robot_comes_online(link: Link) -> None:
    """What a robot program does at start: new session, trigger 0, enable, a moving heartbeat."""
    await link.write(reg.TRIGGER_SEQ, [0, 0, 1, 4321, reg.ControlBit.ENABLE, 0])
    await link.write(reg.ROBOT_HEARTBEAT, [2])


def test_status_and_heartbeat_are_served_and_the_heartbeat_moves():
    async def body() -> None:
        async with running_link() as link:
            first = await link.read()
            await asyncio.sleep(0.35)
            second = await link.read()
            assert first[reg.BOOT_ID] == second[reg.BOOT_ID] == link.handshake.boot_id != 0
            assert first[reg.HEARTBEAT] != second[reg.HEARTBEAT]
            assert 0 not in (first[reg.HEARTBEAT], second[reg.HEARTBEAT])
            assert second[reg.STATUS] & StatusBit.READY == 0  # not enabled by the robot yet
            await robot_comes_online(link)
            status = (await link.read())[reg.STATUS]
            assert status & StatusBit.READY and status & StatusBit.ROBOT_HEARTBEAT_OK

    run(body())


def test_trigger_write_clears_the_result_before_the_very_next_read():
    async def body() -> None:
        async with running_link() as link:
            await robot_comes_online(link)
            await link.write(reg.TRIGGER_SEQ, [1])
            (part,) = [e for e in link.events if isinstance(e, TriggerRequested)]
            link.handshake.on_result(part.part_seq, ACCEPT, 20.0, part.boot_id)
            before = await link.read()
            assert before[reg.RESULT_WORD] == reg.result_word(VerdictCode.ACCEPT, 1)

            await link.write(reg.TRIGGER_SEQ, [2])
            after = await link.read()

            assert after[reg.TRIGGER_ACK_SEQ] == 2
            assert after[reg.RESULT_WORD] == 0 and after[reg.RESULT_SEQ] == 0
            assert after[reg.STATUS] & StatusBit.BUSY
            assert after[reg.CHECK] == reg.check_word(after)

    run(body())


def test_published_result_reads_back_consistent_in_one_request():
    async def body() -> None:
        async with running_link() as link:
            await robot_comes_online(link)
            await link.write(reg.TRIGGER_SEQ, [4097])
            part = next(e for e in link.events if isinstance(e, TriggerRequested))
            reject = Decision(Verdict.REJECT, ("REJECT: dent",), top_class_id=0, top_confidence=0.75)
            (final,) = link.handshake.on_result(part.part_seq, reject, 30.0, part.boot_id)

            block = await link.read(0, reg.BLOCK_COUNT)

            assert reg.split_result_word(block[reg.RESULT_WORD]) == (VerdictCode.REJECT, 4097 & 0x0FFF)
            assert block[reg.RESULT_SEQ] == block[reg.TRIGGER_ACK_SEQ] == block[reg.TRIGGER_SEQ] == 4097
            assert (block[reg.DEFECT_CODE], block[reg.SCORE]) == (1, 750)
            assert block[reg.CHECK] == reg.check_word(block)
            assert block[reg.STATUS] & StatusBit.RESULT_VALID and not block[reg.STATUS] & StatusBit.BUSY
            assert isinstance(final, Finalised) and final.verdict is Verdict.REJECT

    run(body())


@pytest.mark.parametrize(
    ("address", "values"),
    [(reg.RESULT_WORD, [0x5001]), (reg.STATUS, [1, 2]), (reg.INSPECTIONS, [0, 7]), (reg.ALARM, [0])],
)
def test_client_write_to_the_lineside_block_gets_exception_02_and_changes_nothing(address, values):
    async def body() -> None:
        async with running_link() as link:
            await robot_comes_online(link)
            before = await link.read(0, reg.BLOCK_COUNT)
            rr = await link.client.write_registers(address, values, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            after = await link.read(0, reg.BLOCK_COUNT)
            assert after[reg.TRIGGER_ACK_SEQ :] == before[reg.TRIGGER_ACK_SEQ :]
            assert not any(isinstance(e, TriggerRequested) for e in link.events)

    run(body())


def test_any_unit_id_answers_including_255_when_unit_id_is_0():
    async def body() -> None:
        async with running_link() as link:
            for device_id in (255, 1, 0):
                block = await link.read(device_id=device_id)
                assert block[reg.BOOT_ID] == link.handshake.boot_id

    run(body())


def test_coil_requests_are_refused_with_illegal_function():
    async def body() -> None:
        async with running_link() as link:
            rr = await link.client.read_coils(reg.TRIGGER_SEQ, count=1, device_id=1)
            assert rr.isError() and rr.exception_code == 1
            rr = await link.client.write_coil(reg.TRIGGER_SEQ, True, device_id=1)
            assert rr.isError() and rr.exception_code == 1
            assert link.handshake.robot_registers()[0] == 0

    run(body())


def test_the_alarm_register_and_status_bit_follow_the_line_alarms_and_leave_the_result_alone():
    async def body() -> None:
        async with running_link() as link:
            await robot_comes_online(link)
            before = await link.read(0, reg.BLOCK_COUNT)
            assert before[reg.ALARM] == 0 and not before[reg.STATUS] & StatusBit.ALARM_WARNING
            link.handshake.alarm_word = int(reg.AlarmBit.REJECT_RATE | reg.AlarmBit.SCORE)
            during = await link.read(0, reg.BLOCK_COUNT)
            assert during[reg.ALARM] == 0b100001 and during[reg.STATUS] & StatusBit.ALARM_WARNING
            assert (await link.read(reg.ALARM, 1)) == [0b100001]  # alone, as a robot may read it
            # A warning: the result registers and CHECK are as they were.
            assert during[reg.TRIGGER_ACK_SEQ : reg.ALARM] == before[reg.TRIGGER_ACK_SEQ : reg.ALARM]
            link.handshake.alarm_word = 0
            after = await link.read(0, reg.BLOCK_COUNT)
            assert after[reg.ALARM] == 0 and not after[reg.STATUS] & StatusBit.ALARM_WARNING

    run(body())


def test_alarm_words_name_the_chart_kinds():
    assert reg.alarm_word([]) == 0
    assert reg.alarm_word(["reject_rate", "class_rate:pit", "class_rate:chip"]) == 0b11
    assert reg.alarm_word(["brightness", "contrast", "sharpness", "score"]) == 0b111100
    assert reg.REGISTER_NAMES[reg.ALARM] == "ALARM" and reg.BLOCK_COUNT == 23


def test_base_moves_the_map_and_unmapped_addresses_get_exception_02():
    async def body() -> None:
        async with running_link(base=100) as link:
            block = await link.read(100, reg.LINESIDE_COUNT)
            assert block[reg.BOOT_ID] == link.handshake.boot_id
            for address, count in ((0, 1), (99, 2), (100 + reg.BLOCK_COUNT - 1, 2)):
                rr = await link.client.read_holding_registers(address, count=count, device_id=1)
                assert rr.isError() and rr.exception_code == 2, (address, count)

    run(body())


def test_stop_is_bounded_with_a_client_connected_and_frees_the_port():
    async def body() -> None:
        async with running_link() as link:
            port = link.server.port
            started = time.monotonic()
            await link.server.stop()
            assert time.monotonic() - started < 2.5
            again = RobotLinkServer(RobotLinkConfig(port=port), link.handshake, link.events.extend)
            await again.start()
            assert again.port == port
            await again.stop()

    run(body())


def test_binding_a_port_in_use_is_a_lineside_error():
    async def body() -> None:
        async with running_link() as link:
            clash = RobotLinkServer(
                RobotLinkConfig(port=link.server.port), link.handshake, link.events.extend
            )
            with pytest.raises(LinesideError, match="cannot listen"):
                await clash.start()

    run(body())


async def mbpoll_heartbeat(port: int) -> int:
    """One mbpoll (libmodbus) read of STATUS..BOOT_ID as unit 255; returns HEARTBEAT."""
    process = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "tcp", "-p", str(port), "-a", "255", "-0", "-r", "0", "-c", "3", "-t", "4", "-1",
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 5)
    assert process.returncode == 0, err.decode()
    values = dict(re.findall(r"^\[(\d+)\]:\s+(-?\d+)", out.decode(), re.MULTILINE))
    return int(values[str(reg.HEARTBEAT)])


@pytest.mark.skipif(
    shutil.which("mbpoll") is None, reason="Debian mbpoll (libmodbus client) is not installed"
)
def test_mbpoll_an_independent_client_sees_the_heartbeat_move():
    async def body() -> None:
        async with running_link() as link:
            first = await mbpoll_heartbeat(link.server.port)
            await asyncio.sleep(0.35)
            second = await mbpoll_heartbeat(link.server.port)
            assert first != second and 0 not in (first, second)

    run(body())
