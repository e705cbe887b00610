"""The part ledger: the parts in flight on one boot of the robot link, each leaving it exactly once.

The handshake decides when a part ends and with what; the ledger is the one place a part is registered
and the one place it leaves (as a `Finalised` event), so no part can be finalised twice or forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import ErrorCode
from edge.judge.inspection import Decision, Verdict
from edge.robotlink.events import Finalised, HandshakeCounters, TriggerSource
from edge.robotlink.registers import VerdictCode


@dataclass(frozen=True)
class LedgerPart:
    """One triggered part: its TRIGGER_SEQ on the wire, the ledger's own sequence, and when it began."""

    seq: int
    part_seq: int
    t: float
    source: TriggerSource


class PartLedger:
    """The parts in flight by part_seq, oldest first; more than one only for pipelined internal triggers."""

    def __init__(self, boot_id: int, counters: HandshakeCounters) -> None:
        self.boot_id = boot_id
        self._counters = counters
        self._in_flight: dict[int, LedgerPart] = {}
        self._part_seq = 0

    def __len__(self) -> int:
        return len(self._in_flight)

    def oldest_seq(self) -> int | None:
        return next(iter(self._in_flight), None)

    def parts(self) -> list[LedgerPart]:
        """A copy of the parts in flight, oldest first (safe to finalise while iterating)."""
        return list(self._in_flight.values())

    def get(self, part_seq: int) -> LedgerPart | None:
        return self._in_flight.get(part_seq)

    def new_part(self, seq: int, now: float, source: TriggerSource) -> LedgerPart:
        """Number a new part; it is in flight only once admitted (a refused trigger never is)."""
        self._part_seq += 1
        self._counters.triggers += 1
        return LedgerPart(seq, self._part_seq, now, source)

    def admit(self, part: LedgerPart) -> None:
        self._in_flight[part.part_seq] = part

    def finalise(
        self,
        part: LedgerPart,
        now: float,
        verdict: Verdict,
        error: ErrorCode,
        reasons: tuple[str, ...],
        *,
        published: VerdictCode | None,
        late: bool = False,
        decision: Decision | None = None,
    ) -> Finalised:
        """The one place a part leaves the ledger."""
        if self._in_flight.get(part.part_seq) is part:
            del self._in_flight[part.part_seq]
        self._counters.inspections += 1
        if verdict is Verdict.FAULT:
            self._counters.faults += 1
        return Finalised(
            seq=part.seq,
            part_seq=part.part_seq,
            boot_id=self.boot_id,
            verdict=verdict,
            error=error,
            reasons=reasons,
            late=late,
            published=published,
            decision=decision,
            latency_ms=(now - part.t) * 1000.0,
            t_trigger=part.t,
            source=part.source,
        )
