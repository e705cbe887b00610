"""Malformed Modbus/TCP traffic against the robot link's server (role (a)) on loopback: it must keep
answering valid requests, and no malformed frame may change a register (HEARTBEAT moves on its own)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event
from edge.robotlink.handshake import Handshake
from edge.robotlink.server import RobotLinkServer

FUZZ_SECONDS = 2.0


def mbap(pdu: bytes, *, pid: int = 0, length: int | None = None, unit: int = 1, tid: int = 7) -> bytes:
    """An MBAP header (transaction, protocol, length, unit) followed by `pdu`; length as given if set."""
    return struct.pack(">HHHB", tid, pid, len(pdu) + 1 if length is None else length, unit) + pdu


def _fc16(address: int, count: int, values: list[int], byte_count: int | None = None) -> bytes:
    data = b"".join(v.to_bytes(2, "big") for v in values)
    return struct.pack(">BHHB", 16, address, count, len(data) if byte_count is None else byte_count) + data


READ_ALL = struct.pack(">BHH", 3, 0, 16)
TRIGGER_5 = struct.pack(">BHH", 6, reg.TRIGGER_SEQ, 5)

# Every frame is malformed or not for us; none may change a register.
MALFORMED: list[tuple[str, bytes]] = [
    ("MBAP length 0", mbap(READ_ALL, length=0)),
    ("MBAP length 2", mbap(READ_ALL, length=2)),
    ("MBAP length 0xFFFF", mbap(READ_ALL, length=0xFFFF)),
    ("MBAP length 0xFFFF on a trigger write", mbap(TRIGGER_5, length=0xFFFF)),
    ("MBAP length 1 byte short of a trigger write", mbap(TRIGGER_5, length=len(TRIGGER_5))),
    ("protocol id 1, read", mbap(READ_ALL, pid=1)),
    ("protocol id 1, trigger write", mbap(TRIGGER_5, pid=1)),
    ("protocol id 0xFFFF, trigger write", mbap(TRIGGER_5, pid=0xFFFF)),
    *[(f"function code {fc}", mbap(bytes([fc, 0, 16, 0, 1]))) for fc in (0, 7, 9, 12, 0x41, 0x5A, 100, 127)],
    *[
        (f"function code {fc} (error bit set)", mbap(bytes([fc, 0, 16, 0, 5])))
        for fc in (0x83, 0x86, 0x90, 255)
    ],
    ("coil write onto TRIGGER_SEQ's address", mbap(struct.pack(">BHH", 5, reg.TRIGGER_SEQ, 0xFF00))),
    ("coils over the robot block", mbap(struct.pack(">BHHB", 15, 256, 16, 2) + b"\xff\xff")),
    ("read coils", mbap(struct.pack(">BHH", 1, 0, 16))),
    ("read discrete inputs", mbap(struct.pack(">BHH", 2, 0, 16))),
    ("FC3 count 0", mbap(struct.pack(">BHH", 3, 0, 0))),
    ("FC3 count 126", mbap(struct.pack(">BHH", 3, 0, 126))),
    ("FC4 count 126", mbap(struct.pack(">BHH", 4, 0, 126))),
    ("FC16 count 0", mbap(_fc16(reg.TRIGGER_SEQ, 0, []))),
    ("FC16 count 126", mbap(_fc16(reg.TRIGGER_SEQ, 126, [1] * 126))),
    ("FC16 byte count says 2 registers, count 1", mbap(_fc16(reg.TRIGGER_SEQ, 1, [5, 5], byte_count=4))),
    ("FC16 byte count short", mbap(_fc16(reg.TRIGGER_SEQ, 2, [5, 5], byte_count=2))),
    ("FC16 truncated data", mbap(_fc16(reg.TRIGGER_SEQ, 3, [5]))),
    ("FC23 read count 0", mbap(struct.pack(">BHHHHB", 23, 0, 0, reg.TRIGGER_SEQ, 1, 2) + b"\x00\x05")),
    ("FC23 read count 126", mbap(struct.pack(">BHHHHB", 23, 0, 126, reg.TRIGGER_SEQ, 1, 2) + b"\x00\x05")),
    ("FC23 write count 0", mbap(struct.pack(">BHHHHB", 23, 0, 16, reg.TRIGGER_SEQ, 0, 0))),
    ("write into the read-only block (FC6)", mbap(struct.pack(">BHH", 6, reg.RESULT_WORD, 0x5005))),
    ("write spanning both blocks (FC16)", mbap(_fc16(reg.LINESIDE_COUNT - 2, 4, [1, 2, 3, 4]))),
    ("write past the map (FC16)", mbap(_fc16(reg.BLOCK_COUNT - 1, 2, [1, 2]))),
    ("a bare header", struct.pack(">HHHB", 1, 0, 6, 1)),
    ("one byte", b"\x00"),
]


@dataclass
class Target:
    port: int
    loop: asyncio.AbstractEventLoop
    handshake: Handshake
    server: RobotLinkServer
    events: list[Event]  # what the handshake told the appliance (append-only, on the loop)

    def on_loop(self, fn: Any) -> Any:
        """Run fn() on the server's loop and return its value (the handshake is not thread-safe)."""

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(5)


@contextlib.contextmanager
def served(**overrides: Any) -> Iterator[Target]:
    """The robot link server on 127.0.0.1 (its own asyncio loop in a thread), READY, no robot yet."""
    found: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        cfg = RobotLinkConfig(port=0, **overrides)
        handshake = Handshake(cfg, time.monotonic)
        handshake.set_ready(model_ready=True, camera_ready=True)
        events: list[Event] = []
        server = RobotLinkServer(cfg, handshake, events.extend)
        await server.start()
        stop = asyncio.Event()
        found.update(
            target=Target(server.port, asyncio.get_running_loop(), handshake, server, events), stop=stop
        )
        ready.set()
        await server.run_ticks(stop)
        await server.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    target: Target = found["target"]
    try:
        yield target
    finally:
        target.loop.call_soon_threadsafe(found["stop"].set)
        thread.join(10)


def _client(port: int) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
    assert client.connect()
    return client


def _read_map(client: ModbusTcpClient) -> list[int]:
    rr = client.read_holding_registers(0, count=reg.BLOCK_COUNT, device_id=1)
    assert not rr.isError(), rr
    return list(rr.registers)


def _without_heartbeat(block: list[int]) -> list[int]:
    return [v for i, v in enumerate(block) if i != reg.HEARTBEAT]


def _send_once(port: int, frame: bytes) -> None:
    """One connection, one frame, a short look at the answer (an exception reply, silence or a close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(frame)
        sock.settimeout(0.02)
        with contextlib.suppress(TimeoutError, ConnectionError):
            sock.recv(512)


def test_malformed_frames_change_no_register_and_valid_requests_keep_being_answered() -> None:
    rng = random.Random(20240501)
    with served(max_connections=64) as target:
        robot = _client(target.port)
        before = _read_map(robot)
        sent, checks, end = 0, 0, time.monotonic() + FUZZ_SECONDS
        while time.monotonic() < end or sent < len(MALFORMED):
            name, frame = MALFORMED[sent % len(MALFORMED)]
            if sent >= len(MALFORMED) and sent % 2:  # after one pass, garbage between the table's frames
                frame = rng.randbytes(rng.randint(1, 300))
                if frame[2:4] == b"\x00\x00":  # protocol id 0 could be a valid request: not garbage
                    frame = frame[:2] + b"\x00\x01" + frame[4:]
            _send_once(target.port, frame)
            sent += 1
            if sent % 8 == 0:
                now = _read_map(robot)
                assert _without_heartbeat(now) == _without_heartbeat(before), f"changed after {name!r}"
                checks += 1
        after = _read_map(robot)
        counters = target.on_loop(target.handshake.counters.as_dict)
        robot.close()
    assert _without_heartbeat(after) == _without_heartbeat(before)
    assert after[reg.HEARTBEAT] != before[reg.HEARTBEAT], "the server stayed alive and ticking"
    assert counters["triggers"] == counters["ignored_triggers"] == 0
    assert sent >= len(MALFORMED) and checks >= 5


def test_pipelined_and_desynchronised_streams_on_one_connection_change_nothing() -> None:
    with served() as target:
        robot = _client(target.port)
        before = _read_map(robot)
        with socket.create_connection(("127.0.0.1", target.port), timeout=1.0) as sock:
            # Every malformed frame back to back on one connection: the framer must resynchronise or close.
            sock.sendall(b"".join(frame for _, frame in MALFORMED))
            sock.settimeout(0.2)
            with contextlib.suppress(TimeoutError, ConnectionError):
                while sock.recv(4096):
                    pass
        assert _without_heartbeat(_read_map(robot)) == _without_heartbeat(before)
        robot.close()


@pytest.mark.parametrize("limit", [8, 256])
def test_a_hundred_idle_connections_do_not_silence_the_robot_connection(limit: int) -> None:
    with served(max_connections=limit) as target:
        robot = _client(target.port)  # the robot is connected first, as in production
        idle = []
        try:
            for _ in range(120):
                with contextlib.suppress(OSError):
                    idle.append(socket.create_connection(("127.0.0.1", target.port), timeout=1.0))
            for _ in range(5):
                assert len(_read_map(robot)) == reg.BLOCK_COUNT
            if limit == 8:
                # The server admits connections as its loop gets to them: wait (bounded) for all of them.
                deadline = time.monotonic() + 5.0
                while time.monotonic() < deadline:
                    stats = target.on_loop(lambda: target.server.stats()["robot"])
                    assert stats["connections"] <= 8
                    if stats["refused"] >= len(idle) - 7:
                        break
                    time.sleep(0.05)
                assert stats["refused"] >= len(idle) - 7 >= 100, stats
            else:
                late = _client(target.port)  # under the limit: one more connection is still served
                assert len(_read_map(late)) == reg.BLOCK_COUNT
                late.close()
        finally:
            for sock in idle:
                sock.close()
        robot.close()


def test_idle_connections_holding_every_slot_are_closed_so_the_robot_can_reconnect() -> None:
    with served(max_connections=8, idle_timeout_ms=300) as target:
        squatters = [socket.create_connection(("127.0.0.1", target.port), timeout=1.0) for _ in range(8)]
        try:
            time.sleep(0.1)
            ninth = ModbusTcpClient("127.0.0.1", port=target.port, timeout=0.3, retries=0)
            try:
                answered = ninth.connect() and not ninth.read_holding_registers(0, device_id=1).isError()
            except (ModbusException, OSError):  # pymodbus lets a reset through as OSError
                answered = False
            ninth.close()
            assert not answered, "a ninth connection must be refused while 8 are open"
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                closed = target.on_loop(lambda: target.server.stats()["robot"]["idle_closed"])
                if closed >= 8:
                    break
                time.sleep(0.05)
            robot = _client(target.port)
            assert len(_read_map(robot)) == reg.BLOCK_COUNT
            robot.close()
        finally:
            for sock in squatters:
                sock.close()
