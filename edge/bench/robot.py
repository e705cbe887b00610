"""The bench as the robot: connect over Modbus, wait for READY, write triggers and time each result.

Each part: write TRIGGER_SEQ, then read STATUS..CHECK (11 registers, what a robot reads for a result)
back to back until RESULT_WORD and RESULT_SEQ carry that part's result. A result is seen at most one
read round trip after it was published: that round trip is the polling granularity.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.bench.stats import Spread, spread
from edge.errors import LinesideError
from edge.robotlink import registers as reg
from edge.robotlink.registers import StatusBit, VerdictCode, split_result_word

READ_COUNT = reg.CHECK + 1  # STATUS..CHECK
CONNECT_RETRY_S = 0.02
READY_POLL_S = 0.005


@dataclass(frozen=True)
class PartTiming:
    """One robot-triggered part as the robot saw it (monotonic seconds, the system-wide clock)."""

    seq: int
    t_write: float  # just before the write request was sent
    t_seen: float  # when the read that carried the result returned
    polls: int
    verdict: VerdictCode
    error_code: int

    @property
    def ms(self) -> float:
        return (self.t_seen - self.t_write) * 1000.0


@dataclass(frozen=True)
class RobotRun:
    """The parts the robot triggered and the Modbus round trips it measured doing so."""

    parts: list[PartTiming]
    read_rtt: Spread
    write_rtt: Spread


def _nothing() -> None:
    return None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_RETRY_S * 10):
            return True
    except OSError:
        return False


class BenchRobot:
    """A synchronous Modbus TCP client on 127.0.0.1 playing the robot (unit id 1, registers from 0)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)

    def connect(self, timeout_s: float, alive: Callable[[], None] = _nothing) -> None:
        """Retry until the appliance's server answers; `alive` raises if the appliance died meanwhile."""
        deadline = time.monotonic() + timeout_s
        # Probe with a plain socket first: pymodbus logs an ERROR for every refused attempt.
        while not _accepts(self.port):
            alive()
            if time.monotonic() > deadline:
                raise LinesideError(
                    f"bench: no Modbus server on 127.0.0.1:{self.port} within {timeout_s:.0f} s"
                )
            time.sleep(CONNECT_RETRY_S)
        if not self._client.connect():  # type: ignore[no-untyped-call]
            raise LinesideError(f"bench: the Modbus server on 127.0.0.1:{self.port} accepted, then refused")

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def read_block(self, count: int = READ_COUNT) -> list[int]:
        try:
            reply = self._client.read_holding_registers(0, count=count, device_id=1)
        except ModbusException as exc:
            raise LinesideError(f"bench: Modbus read of STATUS x{count} failed: {exc}") from None
        if reply.isError():
            raise LinesideError(f"bench: Modbus read of STATUS x{count} answered {reply}")
        return list(reply.registers)

    def write_trigger(self, seq: int) -> None:
        try:
            reply = self._client.write_register(reg.TRIGGER_SEQ, seq, device_id=1)
        except ModbusException as exc:
            raise LinesideError(f"bench: Modbus write of TRIGGER_SEQ failed: {exc}") from None
        if reply.isError():
            raise LinesideError(f"bench: Modbus write of TRIGGER_SEQ {seq} answered {reply}")

    def wait_ready(self, timeout_s: float, alive: Callable[[], None] = _nothing) -> float:
        """Poll STATUS until its READY bit is set; the monotonic time it was seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.read_block(1)[reg.STATUS] & StatusBit.READY:
                return time.monotonic()
            alive()
            time.sleep(READY_POLL_S)
        raise LinesideError(f"bench: the appliance was not READY within {timeout_s:.0f} s")

    def trigger_parts(
        self, count: int, *, first_seq: int = 1, poll_s: float = 0.0, part_timeout_s: float = 5.0
    ) -> RobotRun:
        """Trigger `count` parts one after another, each once the last one's result was seen."""
        if first_seq < 1 or count < 1 or first_seq + count - 1 > reg.SEQ_MAX:
            raise LinesideError(
                f"bench: sequences {first_seq}..{first_seq + count - 1} outside 1..{reg.SEQ_MAX}"
            )
        parts: list[PartTiming] = []
        reads: list[float] = []
        writes: list[float] = []
        for seq in range(first_seq, first_seq + count):
            t_write = time.monotonic()
            self.write_trigger(seq)
            writes.append((time.monotonic() - t_write) * 1000.0)
            parts.append(self._wait_result(seq, t_write, poll_s, t_write + part_timeout_s, reads))
        return RobotRun(
            parts, spread(reads, "Modbus read round trip"), spread(writes, "Modbus write round trip")
        )

    def _wait_result(
        self, seq: int, t_write: float, poll_s: float, deadline: float, reads: list[float]
    ) -> PartTiming:
        polls = 0
        while True:
            t_read = time.monotonic()
            if t_read > deadline:
                raise LinesideError(f"bench: no result in RESULT_WORD for TRIGGER_SEQ {seq} in time")
            block = self.read_block()
            t_seen = time.monotonic()
            reads.append((t_seen - t_read) * 1000.0)
            polls += 1
            code, low_seq = split_result_word(block[reg.RESULT_WORD])
            if code != VerdictCode.EMPTY and low_seq == seq & 0x0FFF and block[reg.RESULT_SEQ] == seq:
                try:
                    verdict = VerdictCode(code)
                except ValueError:
                    raise LinesideError(
                        f"bench: RESULT_WORD of part {seq} holds unknown verdict {code}"
                    ) from None
                return PartTiming(seq, t_write, t_seen, polls, verdict, block[reg.ERROR_CODE])
            if poll_s > 0:
                time.sleep(poll_s)
