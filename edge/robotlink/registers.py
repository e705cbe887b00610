"""The robot link's register map (docs/ROBOT-LINK.md): offsets from a configurable base, bits and codes.

Every value lineside publishes is 0..32767, because UR's `read_port_register` is signed.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence

from edge.errors import LinesideError

MAX_REGISTER = 32767  # all published values fit in 15 bits
SEQ_MAX = 32767  # sequences run 1..32767, never 0

# Lineside-owned block (lineside -> robot), read-only to the robot.
STATUS = 0
HEARTBEAT = 1
BOOT_ID = 2
TRIGGER_ACK_SEQ = 3
RESULT_WORD = 4
RESULT_SEQ = 5
DEFECT_CODE = 6
SCORE = 7
ERROR_CODE = 8
LATENCY_MS = 9
CHECK = 10
ACTIVE_RECIPE = 11
MODEL_ID = 12
DEFECT_X = 13  # the deciding defect on the robot plane, encoded by encode_position; 0 = none
DEFECT_Y = 14
INSPECTIONS = 15
LINESIDE_FIRST = 0
LINESIDE_COUNT = 16

# Robot-owned block (robot -> lineside), written by the robot only.
TRIGGER_SEQ = 16
ACK_SEQ = 17
ROBOT_HEARTBEAT = 18
SESSION = 19
CONTROL = 20
RECIPE = 21
ROBOT_FIRST = 16
ROBOT_COUNT = 6

# Lineside-owned warnings after the robot block (issue 16): the 0-15 block is full, and moving a register
# in it would break every robot program's CHECK loop. Read-only to the robot, outside CHECK (a warning
# never judges a part), role (a) only for now.
ALARM = 22  # line alarms in force: a bit per chart kind (AlarmBit), 0 = none
WARNINGS_FIRST = 22
WARNINGS_COUNT = 1

BLOCK_COUNT = LINESIDE_COUNT + ROBOT_COUNT + WARNINGS_COUNT

# The result registers, written and cleared together with RESULT_WORD.
RESULT_FIRST = TRIGGER_ACK_SEQ
RESULT_LAST = LATENCY_MS
# CHECK covers the result registers and the position, in this order, so a torn multi-register read
# cannot pair an old position (or any old result register) with a new RESULT_WORD.
CHECKED: tuple[int, ...] = (*range(RESULT_FIRST, RESULT_LAST + 1), DEFECT_X, DEFECT_Y)

# DEFECT_X/Y: round(mm * 10) + 16384; 0 is "no position", so 1..32767 = -1638.3 .. +1638.3 mm.
POSITION_ZERO = 16384
POSITION_STEPS_PER_MM = 10
NO_POSITION = 0

REGISTER_NAMES: dict[int, str] = {
    STATUS: "STATUS",
    HEARTBEAT: "HEARTBEAT",
    BOOT_ID: "BOOT_ID",
    TRIGGER_ACK_SEQ: "TRIGGER_ACK_SEQ",
    RESULT_WORD: "RESULT_WORD",
    RESULT_SEQ: "RESULT_SEQ",
    DEFECT_CODE: "DEFECT_CODE",
    SCORE: "SCORE",
    ERROR_CODE: "ERROR_CODE",
    LATENCY_MS: "LATENCY_MS",
    CHECK: "CHECK",
    ACTIVE_RECIPE: "ACTIVE_RECIPE",
    MODEL_ID: "MODEL_ID",
    DEFECT_X: "DEFECT_X",
    DEFECT_Y: "DEFECT_Y",
    INSPECTIONS: "INSPECTIONS",
    TRIGGER_SEQ: "TRIGGER_SEQ",
    ACK_SEQ: "ACK_SEQ",
    ROBOT_HEARTBEAT: "ROBOT_HEARTBEAT",
    SESSION: "SESSION",
    CONTROL: "CONTROL",
    RECIPE: "RECIPE",
    ALARM: "ALARM",
}


class StatusBit(enum.IntFlag):
    """Bits of STATUS."""

    READY = 1 << 0  # model warmed up, camera delivered a frame, enabled
    BUSY = 1 << 1  # an inspection is in flight
    RESULT_VALID = 1 << 2  # the result registers hold a result for TRIGGER_ACK_SEQ
    ERROR = 1 << 3  # latched on a published ERROR/LATE or a raised interlock; CLEAR_ERROR resets it
    ROBOT_HEARTBEAT_OK = 1 << 4  # the robot's heartbeat moved within the staleness threshold
    RECORDS_WARNING = 1 << 5  # records cannot be written for now (disk full/read-only); verdicts still flow
    ALARM_WARNING = 1 << 6  # a line alarm is in force (ALARM != 0): a warning, verdicts unchanged


class AlarmBit(enum.IntFlag):
    """Bits of ALARM: which kind of chart is in alarm (docs/spc.md)."""

    REJECT_RATE = 1 << 0  # the reject rate's p-chart
    CLASS_RATE = 1 << 1  # any defect class's p-chart
    BRIGHTNESS = 1 << 2  # image drift: mean grey
    CONTRAST = 1 << 3  # image drift: grey spread
    SHARPNESS = 1 << 4  # image drift: focus measure
    SCORE = 1 << 5  # score drift: accepted parts creeping toward the threshold


_ALARM_BITS = {
    "reject_rate": AlarmBit.REJECT_RATE,
    "class_rate": AlarmBit.CLASS_RATE,
    "brightness": AlarmBit.BRIGHTNESS,
    "contrast": AlarmBit.CONTRAST,
    "sharpness": AlarmBit.SHARPNESS,
    "score": AlarmBit.SCORE,
}


def alarm_word(charts: Iterable[str]) -> int:
    """ALARM for the charts in alarm (`reject_rate`, `class_rate:<class>`, `brightness`...)."""
    word = AlarmBit(0)
    for chart in charts:
        word |= _ALARM_BITS.get(chart.partition(":")[0], AlarmBit(0))
    return int(word)


class ControlBit(enum.IntFlag):
    """Bits of CONTROL (written by the robot)."""

    ENABLE = 1 << 0
    CLEAR_ERROR = 1 << 1  # acts on its rising edge
    # Acts on its rising edge: releases the latched line alarms (docs/spc.md). A warning's acknowledgement
    # only: it touches no result register, no CHECK and no part.
    ACK_ALARMS = 1 << 2


class VerdictCode(enum.IntEnum):
    """The 3-bit verdict in RESULT_WORD. Every code is at Hamming distance >= 2 from ACCEPT,
    so zeros, a reset or one flipped bit never read as ACCEPT."""

    EMPTY = 0b000
    REJECT = 0b010
    ERROR = 0b011
    ACCEPT = 0b101
    LATE = 0b110


def register_name(offset: int) -> str:
    """Name of a register offset, for one-line error messages."""
    return REGISTER_NAMES.get(offset, f"offset {offset}")


def check_robot_write(offset: int, values: Sequence[int]) -> None:
    """A robot write must lie inside the robot block and hold 16-bit values (LinesideError naming it)."""
    end = offset + len(values)
    if not values or offset < ROBOT_FIRST or end > ROBOT_FIRST + ROBOT_COUNT:
        raise LinesideError(
            f"robot link: write to {register_name(offset)} x{len(values)} is outside the robot block "
            f"({register_name(ROBOT_FIRST)}..{register_name(RECIPE)})"
        )
    if any(not 0 <= v <= 0xFFFF for v in values):
        raise LinesideError(f"robot link: write to {register_name(offset)} has a value outside 0..65535")


def result_word(verdict: VerdictCode, seq: int) -> int:
    """RESULT_WORD = verdict << 12 | (seq & 0x0FFF); always within 0..32767."""
    return (int(verdict) << 12) | (seq & 0x0FFF)


def split_result_word(word: int) -> tuple[int, int]:
    """(verdict code, low 12 bits of the sequence) of a RESULT_WORD, for robot-side checks."""
    return (word >> 12) & 0b111, word & 0x0FFF


def next_seq(seq: int) -> int:
    """The sequence after `seq`: 1..32767 then back to 1, never 0."""
    return seq % SEQ_MAX + 1


def clamp_register(value: float) -> int:
    """Round and clamp a measurement into 0..32767, so it never wraps into a misleading value."""
    return max(0, min(MAX_REGISTER, round(value)))


def crc16_modbus_bytes(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF, no final xor); b"123456789" gives 0x4B37."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def crc16_modbus(registers: Sequence[int]) -> int:
    """CRC-16/MODBUS over registers as they travel on the wire: each register high byte first."""
    return crc16_modbus_bytes(b"".join((r & 0xFFFF).to_bytes(2, "big") for r in registers))


def check_word(block: Sequence[int]) -> int:
    """CHECK for a lineside block: CRC-16/MODBUS over offsets 3..9 then 13..14, masked to 15 bits."""
    return crc16_modbus([block[offset] for offset in CHECKED]) & 0x7FFF


def encode_position(mm: float) -> int:
    """DEFECT_X/Y for a robot-plane coordinate: round(mm * 10) + 16384, in 1..32767 (0 means none).

    Raises LinesideError outside -1638.3 .. +1638.3 mm or for a non-finite value: a position that does
    not fit is never clamped into a wrong one.
    """
    if not math.isfinite(mm):
        raise LinesideError(f"robot link: DEFECT_X/Y cannot encode a position of {mm} mm")
    value = round(mm * POSITION_STEPS_PER_MM) + POSITION_ZERO
    if not 1 <= value <= MAX_REGISTER:
        low = (1 - POSITION_ZERO) / POSITION_STEPS_PER_MM
        high = (MAX_REGISTER - POSITION_ZERO) / POSITION_STEPS_PER_MM
        raise LinesideError(f"robot link: DEFECT_X/Y position {mm} mm is outside {low} .. {high} mm")
    return value


def decode_position(value: int) -> float | None:
    """The coordinate in mm of a DEFECT_X/Y value; None for 0 (no position)."""
    if not 0 <= value <= MAX_REGISTER:
        raise LinesideError(f"robot link: DEFECT_X/Y value {value} is outside 0..{MAX_REGISTER}")
    if value == NO_POSITION:
        return None
    return (value - POSITION_ZERO) / POSITION_STEPS_PER_MM


def model_id(sha256_hex: str) -> int:
    """MODEL_ID: the low 15 bits of the model's sha256 (a hex string)."""
    return int(sha256_hex, 16) & 0x7FFF
