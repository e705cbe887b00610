"""What the handshake tells the rest of the appliance: a part to inspect, a part finalised, a dropped
result, an interlock change, a recipe request, the line alarms acknowledged; and its counters. The worker
turns them into messages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from edge.errors import ErrorCode
from edge.judge.inspection import Decision, Verdict
from edge.robotlink.registers import VerdictCode

TriggerSource = Literal["robot", "internal"]


@dataclass(frozen=True)
class TriggerRequested:
    """A part was registered and must be inspected now.

    seq is the 15-bit sequence on the wire (TRIGGER_SEQ); (boot_id, part_seq) identifies the part
    everywhere else and is what `Handshake.on_result` must be given back.
    """

    seq: int
    part_seq: int
    boot_id: int
    t: float  # the handshake clock at the trigger (time.monotonic() in production)
    source: TriggerSource


@dataclass(frozen=True)
class Finalised:
    """A registered part got its final verdict: emitted exactly once per part.

    verdict is what the ledger records and never ACCEPT unless ACCEPT was published in time.
    published is what the robot was shown (None when nothing was: superseded or forgotten parts).
    decision is the inspection's own decision when one arrived (also for a LATE result).
    """

    seq: int
    part_seq: int
    boot_id: int
    verdict: Verdict
    error: ErrorCode
    reasons: tuple[str, ...]
    late: bool
    published: VerdictCode | None
    decision: Decision | None
    latency_ms: float  # trigger to finalisation on the handshake clock
    t_trigger: float
    source: TriggerSource


@dataclass(frozen=True)
class ResultDropped:
    """A result for no part in flight (late, superseded, or from another boot): counted, never applied."""

    part_seq: int
    boot_id: int
    reason: str
    decision: Decision


@dataclass(frozen=True)
class InterlockChanged:
    """The line interlock (run permit off) was raised or lowered; the first tick reports the initial state."""

    raised: bool
    reason: str


@dataclass(frozen=True)
class RecipeRequested:
    """The robot wrote a new value to RECIPE."""

    number: int


@dataclass(frozen=True)
class AlarmsAckRequested:
    """The robot raised CONTROL ACK_ALARMS (a rising edge): acknowledge the line alarms. Only the alarms
    worker acts on it; no register of a part changes."""


@dataclass
class HandshakeCounters:
    """Every part and every drop is counted (DESIGN safety rule 4)."""

    triggers: int = 0  # parts registered (robot and internal triggers)
    accepts: int = 0  # ACCEPT published
    rejects: int = 0  # REJECT published
    errors: int = 0  # ERROR published (faulted inspections and refused triggers)
    late_published: int = 0  # LATE published (a result past the budget, or no result at all)
    late_dropped: int = 0  # results for no part in flight, dropped
    superseded: int = 0  # parts orphaned by a newer trigger
    timeouts: int = 0  # parts with no result within the budget (also in late_published)
    refused: int = 0  # triggers finalised at once: disabled, not ready, robot link down
    forgotten: int = 0  # parts orphaned by a session change, a stale robot or a shutdown
    ignored_triggers: int = 0  # TRIGGER_SEQ writes of 0 or > 32767
    inspections: int = 0  # parts finalised
    faults: int = 0  # parts finalised as FAULT

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


Event = TriggerRequested | Finalised | ResultDropped | InterlockChanged | RecipeRequested | AlarmsAckRequested
