"""What the robot program checks before it may accept a part (`judge`), and how it reaches the 22
registers (`RegisterPort`; `ModbusClientPort` in role (a), set up by `RobotSettings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.errors import ErrorCode, LinesideError
from edge.robotlink import registers as reg
from edge.robotlink.registers import StatusBit, VerdictCode

RobotDecision = Literal["ACCEPT", "REJECT"]
# Why a part was rejected: the appliance's own REJECT, an appliance fault (ERROR, LATE, not READY), or
# no valid answer at all (deadline, link, boot, CHECK, frozen heartbeat); only the last stops the line.
RejectKind = Literal["accepted", "verdict", "fault", "comm"]


@dataclass(frozen=True)
class RobotSettings:
    """How the robot program talks and decides; the defaults follow docs/robot-link.md's timing budget."""

    host: str = "127.0.0.1"
    port: int = 5020
    base: int = 0
    unit_id: int = 1  # the server answers any unit id; UR sends 255
    deadline_ms: float = 600.0  # trigger to decision; > publish budget + poll period + margin
    poll_ms: float = 10.0
    heartbeat_ms: float = 100.0  # ROBOT_HEARTBEAT period (>= 5 Hz)
    appliance_stale_ms: float = 500.0  # HEARTBEAT unchanged this long: frozen (>= 3 x slower period)
    stop_after: int = 3  # this many communication rejects in a row stop the line; 0: never
    request_timeout_s: float = 0.3
    ready_timeout_s: float = 30.0
    takt_ms: float = 0.0  # least time between two triggers
    recipe: int | None = None  # written to RECIPE at start when set
    auto_clear_error: bool = True  # pulse CLEAR_ERROR before a trigger while STATUS ERROR is latched
    ack_alarms: bool = False  # pulse ACK_ALARMS before a trigger while STATUS ALARM_WARNING is set


class LinkDownError(LinesideError):
    """No answer from the appliance: not connected, a transport failure or a Modbus exception reply."""


class RegisterPort(Protocol):
    """The robot's access to the 22-register map (offsets, not addresses); one request at a time."""

    def read(self, offset: int, count: int) -> list[int]: ...
    def write(self, offset: int, values: list[int]) -> None: ...
    def drop(self, hold_s: float) -> None: ...  # break the link now, for hold_s (fault injection)
    def close(self) -> None: ...


class ModbusClientPort:
    """Role (a): a pymodbus client of lineside's server. Sync, so a request is never pipelined (the
    pymodbus server drops a request that arrives before its previous reply)."""

    def __init__(self, s: RobotSettings) -> None:
        self._s = s
        self._client = ModbusTcpClient(
            s.host, port=s.port, timeout=s.request_timeout_s, retries=0, reconnect_delay=0.2
        )
        self._connected = False
        self._offline_until = 0.0

    def read(self, offset: int, count: int) -> list[int]:
        rr = self._call(
            lambda: self._client.read_holding_registers(
                self._s.base + offset, count=count, device_id=self._s.unit_id
            )
        )
        return [int(v) for v in rr.registers[:count]]

    def write(self, offset: int, values: list[int]) -> None:
        self._call(
            lambda: self._client.write_registers(self._s.base + offset, values, device_id=self._s.unit_id)
        )

    def drop(self, hold_s: float = 0.0) -> None:
        self.close()
        self._offline_until = time.monotonic() + hold_s

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
        self._connected = False

    def _call(self, request: Callable[[], Any]) -> Any:  # returns the pymodbus response
        if time.monotonic() < self._offline_until:
            raise LinkDownError("robot: link dropped (injected)")
        if not self._connected:
            self._connected = bool(self._client.connect())  # type: ignore[no-untyped-call]
            if not self._connected:
                raise LinkDownError(f"robot: cannot connect to {self._s.host}:{self._s.port}")
        try:
            rr = request()
        except (ModbusException, OSError) as exc:
            self.close()  # a half-read reply must not be taken for the next one
            raise LinkDownError(f"robot: link lost ({str(exc).splitlines()[0][:120]})") from None
        if rr.isError():
            raise LinkDownError(f"robot: exception reply {rr}")
        return rr


def judge(
    block: list[int], seq: int, boot_id: int, *, late: bool, heartbeat_fresh: bool
) -> tuple[RobotDecision, RejectKind, str] | None:
    """The robot's rule on one read of the lineside block; None while no result for `seq` is there.

    ACCEPT only if the verdict is ACCEPT and RESULT_SEQ matches and BOOT_ID is unchanged and READY and not
    ERROR and the appliance heartbeat moved recently and CHECK matches and the deadline has not passed
    (and ERROR_CODE and DEFECT_X/Y are 0: an ACCEPT has neither). CHECK covers DEFECT_X/Y too, so a
    matching read never pairs an old position with this result.
    """
    if block[reg.BOOT_ID] != boot_id:
        return "REJECT", "comm", f"BOOT_ID changed ({boot_id} -> {block[reg.BOOT_ID]}): appliance restarted"
    code, low = reg.split_result_word(block[reg.RESULT_WORD])
    if block[reg.RESULT_SEQ] != seq or code == VerdictCode.EMPTY:
        return None
    if block[reg.CHECK] != reg.check_word(block):
        return "REJECT", "comm", "CHECK mismatch: torn or corrupt read"
    if low != seq & 0x0FFF:
        return "REJECT", "comm", f"RESULT_WORD is for sequence bits {low}, not {seq & 0x0FFF}"
    error = block[reg.ERROR_CODE]
    if code != VerdictCode.ACCEPT:
        return _not_accept(code, error, block)
    status = block[reg.STATUS]
    checks: tuple[tuple[bool, RejectKind, str], ...] = (
        (late, "comm", "late: result seen after the deadline"),
        (not status & StatusBit.READY, "fault", "STATUS READY is off"),
        (bool(status & StatusBit.ERROR), "fault", "STATUS ERROR is set"),
        (not heartbeat_fresh, "comm", "appliance HEARTBEAT frozen"),
        (error != 0, "fault", f"ACCEPT with ERROR_CODE {error}"),
        (bool(block[reg.DEFECT_X] or block[reg.DEFECT_Y]), "fault", "ACCEPT with DEFECT_X/Y set"),
    )
    for failed, kind, why in checks:
        if failed:
            return "REJECT", kind, why
    return "ACCEPT", "accepted", "ACCEPT"


def _not_accept(code: int, error: int, block: list[int]) -> tuple[RobotDecision, RejectKind, str]:
    if code == VerdictCode.REJECT:
        defect, score = block[reg.DEFECT_CODE], block[reg.SCORE]
        return "REJECT", "verdict", f"appliance REJECT (defect code {defect}, score {score / 1000:.3f})"
    try:
        name = ErrorCode(error).kind
    except ValueError:
        name = "unknown"
    if code == VerdictCode.ERROR:
        return "REJECT", "fault", f"appliance ERROR code {error} ({name})"
    if code == VerdictCode.LATE:
        return "REJECT", "fault", f"appliance LATE (error code {error}, {name})"
    return "REJECT", "comm", f"unknown verdict code {code:#05b}"


def defect_position(block: list[int]) -> tuple[float, float] | None:
    """The deciding defect's robot-plane position (mm) from DEFECT_X/Y; None unless both hold one.

    Meaningful only on a read whose CHECK matches, together with the RESULT_WORD/RESULT_SEQ read with it.
    """
    try:
        x, y = reg.decode_position(block[reg.DEFECT_X]), reg.decode_position(block[reg.DEFECT_Y])
    except LinesideError:
        return None  # outside 0..32767: not a value lineside publishes
    return None if x is None or y is None else (x, y)
