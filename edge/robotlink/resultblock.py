"""The result registers of the lineside block: what the robot reads about the last triggered part.

TRIGGER_ACK_SEQ..LATENCY_MS and DEFECT_X/Y change together, in one update, and only through this class;
CHECK over them is computed when the block is read (`Handshake.snapshot`).
"""

from __future__ import annotations

import logging

from edge.errors import ErrorCode, LinesideError
from edge.robotlink import registers as reg
from edge.robotlink.registers import VerdictCode

log = logging.getLogger(__name__)

RESULT_SIZE = reg.RESULT_LAST - reg.RESULT_FIRST + 1  # TRIGGER_ACK_SEQ .. LATENCY_MS
_NO_POSITION = (reg.NO_POSITION, reg.NO_POSITION)


class ResultRegisters:
    """The result registers and the pick position, always replaced whole."""

    def __init__(self) -> None:
        self._values = [0] * RESULT_SIZE
        self._position = _NO_POSITION  # DEFECT_X, DEFECT_Y: valid only with these values

    def clear(self) -> None:
        """No result at all (a SESSION change, a stale robot heartbeat): RESULT_VALID goes off."""
        self._values = [0] * RESULT_SIZE
        self._position = _NO_POSITION

    def acknowledge(self, seq: int) -> None:
        """A new trigger: TRIGGER_ACK_SEQ = seq, the previous part's result gone."""
        self._values = [seq] + [0] * (RESULT_SIZE - 1)
        self._position = _NO_POSITION

    def publish(
        self,
        seq: int,
        code: VerdictCode,
        latency_ms: float,
        *,
        error: ErrorCode = ErrorCode.NONE,
        defect: int = 0,
        score: float = 0.0,
        position: tuple[float, float] | None = None,
    ) -> None:
        """Write every result register and the position at once."""
        self._position = _encoded_position(seq, position)
        self._values = [
            seq,
            reg.result_word(code, seq),
            seq,
            reg.clamp_register(defect),
            reg.clamp_register(score),
            int(error),
            reg.clamp_register(latency_ms),
        ]

    @property
    def valid(self) -> bool:
        """RESULT_VALID: a verdict is shown (RESULT_WORD is not EMPTY)."""
        word = self._values[reg.RESULT_WORD - reg.RESULT_FIRST]
        return reg.split_result_word(word)[0] != VerdictCode.EMPTY

    def write_into(self, block: list[int]) -> None:
        """Copy the result registers and DEFECT_X/Y into a lineside block being assembled."""
        block[reg.RESULT_FIRST : reg.RESULT_LAST + 1] = self._values
        block[reg.DEFECT_X], block[reg.DEFECT_Y] = self._position


def _encoded_position(seq: int, position: tuple[float, float] | None) -> tuple[int, int]:
    """DEFECT_X and DEFECT_Y for a result; both 0 (no position) when there is none or it does not fit."""
    if position is None:
        return _NO_POSITION
    try:
        return reg.encode_position(position[0]), reg.encode_position(position[1])
    except LinesideError as exc:
        # The verdict stands (a REJECT is still a reject); only the pick position is withheld.
        log.warning("part %d: %s; DEFECT_X/Y published as 0 (no position)", seq, exc)
        return _NO_POSITION
