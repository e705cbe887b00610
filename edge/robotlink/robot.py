"""The robot program of docs/robot-link.md as a library: what a robot or PLC must do against role (a),
with fault injection, so `lineside robot-sim` and the tests can check the appliance from the robot's side.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.robotlink import registers as reg
from edge.robotlink.registers import ControlBit, StatusBit
from edge.robotlink.robotrules import (
    LinkDownError,
    ModbusClientPort,
    RegisterPort,
    RejectKind,
    RobotDecision,
    RobotSettings,
    defect_position,
    judge,
)


class Inject(str, enum.Enum):
    """Faults the robot side can inject."""

    HEARTBEAT_STOP = "heartbeat-stop"  # no ROBOT_HEARTBEAT for hold_ms, then through the injected parts
    SESSION_CHANGE = "session-change"  # a new SESSION right after the trigger: the part is forgotten
    LINK_DROP = "link-drop"  # close the TCP connection after the trigger, reconnect after hold_ms
    SLOW = "slow"  # a deadline the appliance cannot meet (slow_deadline_ms)
    REPEAT_TRIGGER = "repeat-trigger"  # rewrite the same TRIGGER_SEQ every poll and after the result
    TORN_READ = "torn-read"  # read the block in two requests, CHECK's half first, with a gap between


@dataclass(frozen=True)
class FaultPlan:
    """Inject `kind` into parts first..first+count-1 (heartbeat-stop: a pause starting at part `first`)."""

    kind: Inject
    first: int = 0
    count: int = 1
    hold_ms: float = 1500.0  # heartbeat-stop pause; link-drop time offline
    slow_deadline_ms: float = 1.0
    torn_gap_ms: float = 20.0  # between the two halves of a torn read: makes a tear likely


@dataclass(frozen=True)
class PartOutcome:
    """What the robot did with one part and why."""

    index: int
    seq: int
    boot_id: int
    decision: RobotDecision
    kind: RejectKind
    reason: str
    latency_ms: float | None  # trigger write to the read that showed the result; None: no result seen
    verdict: int | None  # VerdictCode seen in RESULT_WORD (None: no result for this part)
    error_code: int
    defect_code: int = 0
    score: int = 0
    injected: str | None = None
    robot_position_mm: tuple[float, float] | None = None  # DEFECT_X/Y of this part's result, if any
    status: int = 0  # STATUS as read with this part's last register block (warnings such as records)


@dataclass
class RunReport:
    """A run of the robot program: one outcome per part, and how it ended."""

    outcomes: list[PartOutcome] = field(default_factory=list)
    line_stopped: str | None = None  # why the robot stopped the line (N communication rejects in a row)
    violations: list[str] = field(default_factory=list)  # protocol breaches the robot saw
    boot_ids: list[int] = field(default_factory=list)
    error_clears: int = 0  # CLEAR_ERROR pulses sent
    alarm_acks: int = 0  # ACK_ALARMS pulses sent (a line alarm acknowledged; no part's business)
    check_mismatches: int = 0  # reads whose CHECK did not match (torn): never judged, read again


@dataclass
class _Part:
    """One part while the robot works on it."""

    index: int
    seq: int
    boot: int | None  # BOOT_ID when it was triggered (None: the link was down)
    deadline_ms: float
    injected: Inject | None
    t0: float  # just before the trigger write

    def outcome(
        self, judged: tuple[RobotDecision, RejectKind, str], block: list[int] | None, latency_ms: float | None
    ) -> PartOutcome:
        """The outcome; what the result registers said only when they held a result for this part."""
        decision, kind, reason = judged
        boot = self.boot or 0
        ours = block is not None and block[reg.RESULT_SEQ] == self.seq and block[reg.BOOT_ID] == boot
        position = None
        if block is None or not ours:
            code, error, defect, score = None, 0, 0, 0
        else:
            code = reg.split_result_word(block[reg.RESULT_WORD])[0]
            error, defect, score = block[reg.ERROR_CODE], block[reg.DEFECT_CODE], block[reg.SCORE]
            position = defect_position(block)
        latency = None if latency_ms is None or not ours else round(latency_ms, 3)
        injected = None if self.injected is None else self.injected.value
        return PartOutcome(
            self.index,
            self.seq,
            boot,
            decision,
            kind,
            reason,
            latency,
            code,
            error,
            defect,
            score,
            injected,
            position,
            0 if block is None else block[reg.STATUS],
        )


class RobotProgram:
    """The robot side of the handshake over a RegisterPort (role (a) by default); one part at a time.

    Call `run(parts)`, or `start()` and then `inspect_part(i)` per part, then `close()`.
    `stop` ends a run between polls.
    """

    def __init__(
        self,
        settings: RobotSettings,
        fault: FaultPlan | None = None,
        port: RegisterPort | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.s = settings
        self.fault = fault
        self.port = port or ModbusClientPort(settings)
        self.stop = stop or threading.Event()
        self.report = RunReport()
        self.session = secrets.randbelow(reg.SEQ_MAX) + 1
        self._seq = secrets.randbelow(reg.SEQ_MAX) + 1
        self._beat = 1
        self._beat_due = 0.0
        self._beat_paused = False
        self._boot: int | None = None
        self._hb_seen: tuple[int, float] | None = None  # appliance HEARTBEAT value, when first seen
        self._hb_moved = False  # it changed at least once since (a frozen appliance shows one value)
        self._last_trigger_t = 0.0
        self._comm_streak = 0

    # ---- the program -------------------------------------------------------------------------------
    def start(self) -> None:
        """Write SESSION, TRIGGER_SEQ 0 and ENABLE; wait (bounded) for READY, both heartbeats moving."""
        deadline = time.monotonic() + self.s.ready_timeout_s
        last = "no answer"
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                self._service()
                block = self._read_block()
                if self._boot != block[reg.BOOT_ID]:
                    self._initialise(block[reg.BOOT_ID])
                status = block[reg.STATUS]
                if status & StatusBit.READY and status & StatusBit.ROBOT_HEARTBEAT_OK and self._fresh():
                    return
                last = f"STATUS {status:#07b}"
            except LinkDownError as exc:
                last = str(exc)
            self.stop.wait(0.05)
        raise LinkDownError(f"robot: appliance not READY within {self.s.ready_timeout_s:.0f} s ({last})")

    def run(self, parts: int, on_outcome: Callable[[PartOutcome], None] | None = None) -> RunReport:
        """start(), then `parts` parts or until the line is stopped or `stop` is set; always closes."""
        try:
            self.start()
            for index in range(parts):
                if self.stop.is_set():
                    break
                outcome = self.inspect_part(index)
                if on_outcome is not None:
                    on_outcome(outcome)
                if self.report.line_stopped:
                    break
        finally:
            self.close()
        return self.report

    def close(self) -> None:
        self.port.close()

    def inspect_part(self, index: int) -> PartOutcome:
        """Trigger one part, poll until the deadline, decide, ACK; counts toward the line-stop rule."""
        self._wait_takt()
        injected = self._injection(index)
        boot = self._prepare()
        self._seq = reg.next_seq(self._seq)
        slow = injected == Inject.SLOW and self.fault is not None
        deadline_ms = self.fault.slow_deadline_ms if slow and self.fault else self.s.deadline_ms
        outcome = self._cycle(_Part(index, self._seq, boot, deadline_ms, injected, time.monotonic()))
        self.report.outcomes.append(outcome)
        self._comm_streak = self._comm_streak + 1 if outcome.kind == "comm" else 0
        if self.s.stop_after and self._comm_streak >= self.s.stop_after:
            self.report.line_stopped = (
                f"{self._comm_streak} communication rejects in a row (last: {outcome.reason})"
            )
        return outcome

    # ---- one part ----------------------------------------------------------------------------------
    def _cycle(self, part: _Part) -> PartOutcome:
        """Write the trigger, poll until a result for it or the deadline; re-write it after a link loss."""
        deadline = part.t0 + part.deadline_ms / 1000.0
        written, last = False, "no answer"
        while not self.stop.is_set():
            self._service()
            if time.monotonic() > deadline:
                break
            try:
                if not written or part.injected == Inject.REPEAT_TRIGGER:
                    self._write(reg.TRIGGER_SEQ, [part.seq])  # rewriting the same value never re-triggers
                    if not written:
                        written = True
                        self._after_trigger(part.injected)
                        continue
                seen = self._look(part, deadline)
                if isinstance(seen, PartOutcome):
                    return seen
                last = seen
            except LinkDownError as exc:
                last = str(exc)
            self.stop.wait(max(0.0, min(self.s.poll_ms / 1000.0, deadline - time.monotonic())))
        self._ack(part.seq)
        why = f"deadline: no result for {part.seq} within {part.deadline_ms:.0f} ms ({last})"
        return part.outcome(("REJECT", "comm", why), None, None)

    def _look(self, part: _Part, deadline: float) -> PartOutcome | str:
        """One poll: the part's outcome once a consistent read shows its result, else what was seen."""
        block = self._read_block(torn=part.injected == Inject.TORN_READ)
        now = time.monotonic()
        part.boot = block[reg.BOOT_ID] if part.boot is None else part.boot  # the link was down at the trigger
        if block[reg.CHECK] != reg.check_word(block):
            # A torn read (e.g. one UR signal per register) proves nothing either way: read again.
            self.report.check_mismatches += 1
            return "CHECK mismatch: torn or corrupt read"
        judged = judge(block, part.seq, part.boot, late=now > deadline, heartbeat_fresh=self._fresh())
        if judged is None:
            return f"TRIGGER_ACK_SEQ {block[reg.TRIGGER_ACK_SEQ]}, RESULT_SEQ {block[reg.RESULT_SEQ]}"
        if part.injected == Inject.REPEAT_TRIGGER:
            self._check_no_retrigger(part.seq, block)
        self._check_position(part.seq, block)
        self._ack(part.seq)
        return part.outcome(judged, block, (now - part.t0) * 1000.0)

    def _after_trigger(self, injected: Inject | None) -> None:
        if injected == Inject.SESSION_CHANGE:
            self.session = reg.next_seq(self.session)
            self._write(reg.SESSION, [self.session])
        elif injected == Inject.LINK_DROP and self.fault is not None:
            self.port.drop(self.fault.hold_ms / 1000.0)

    def _check_no_retrigger(self, seq: int, seen: list[int]) -> None:
        """A rewrite of the current TRIGGER_SEQ must leave the published result alone."""
        try:
            self._write(reg.TRIGGER_SEQ, [seq])
            again = self._read_block()
        except LinkDownError:
            return
        same = (reg.TRIGGER_ACK_SEQ, reg.RESULT_WORD, reg.RESULT_SEQ)
        if any(again[r] != seen[r] for r in same) or again[reg.STATUS] & StatusBit.BUSY:
            self.report.violations.append(f"part {seq}: a repeated TRIGGER_SEQ write re-triggered it")

    def _check_position(self, seq: int, block: list[int]) -> None:
        """DEFECT_X/Y are set together, and only with a REJECT; anything else breaks the protocol."""
        x, y = block[reg.DEFECT_X], block[reg.DEFECT_Y]
        if x == y == reg.NO_POSITION:
            return
        code = reg.split_result_word(block[reg.RESULT_WORD])[0]
        if code != reg.VerdictCode.REJECT or reg.NO_POSITION in (x, y) or defect_position(block) is None:
            self.report.violations.append(
                f"part {seq}: DEFECT_X/Y {x}/{y} published with verdict code {code:#05b}"
            )

    # ---- housekeeping ------------------------------------------------------------------------------
    def _prepare(self) -> int | None:
        """Before a trigger: learn BOOT_ID (re-initialise after a restart) and clear a latched ERROR."""
        self._service()
        try:
            block = self._read_block()
            if block[reg.BOOT_ID] != self._boot:
                self._initialise(block[reg.BOOT_ID])
            elif block[reg.STATUS] & StatusBit.ERROR and self.s.auto_clear_error:
                self._write(reg.CONTROL, [ControlBit.ENABLE | ControlBit.CLEAR_ERROR])
                self._write(reg.CONTROL, [ControlBit.ENABLE])
                self.report.error_clears += 1
            elif block[reg.STATUS] & StatusBit.ALARM_WARNING and self.s.ack_alarms:
                # An operator's acknowledgement, as a PLC's button would send it: a rising edge of bit 2.
                self._write(reg.CONTROL, [ControlBit.ENABLE | ControlBit.ACK_ALARMS])
                self._write(reg.CONTROL, [ControlBit.ENABLE])
                self.report.alarm_acks += 1
        except LinkDownError:
            pass  # the trigger write that follows meets the same link and decides
        return self._boot

    def _initialise(self, boot: int) -> None:
        """A new appliance boot knows nothing of us: SESSION, TRIGGER_SEQ 0, ENABLE (and RECIPE)."""
        block = [0, 0, self._beat, self.session, int(ControlBit.ENABLE)]
        if self.s.recipe is not None:
            block.append(self.s.recipe)
        self._write(reg.TRIGGER_SEQ, block)
        self._boot = boot
        self._hb_seen, self._hb_moved = None, False
        if boot:  # 0: nothing published yet (role (b) before lineside connected); never a real BOOT_ID
            self.report.boot_ids.append(boot)

    def _read_block(self, torn: bool = False) -> list[int]:
        if not torn:
            block = self.port.read(reg.LINESIDE_FIRST, reg.LINESIDE_COUNT)
        else:
            half = reg.LINESIDE_COUNT // 2  # CHECK is in the upper half; read it first
            upper = self.port.read(half, half)
            gap = self.fault.torn_gap_ms / 1000.0 if self.fault else 0.0
            self.stop.wait(gap)
            block = self.port.read(0, half) + upper
        self._saw_heartbeat(block[reg.HEARTBEAT])
        return block

    def _write(self, offset: int, values: list[int]) -> None:
        self.port.write(offset, [int(v) for v in values])

    def _ack(self, seq: int) -> None:
        with contextlib.suppress(LinkDownError):  # informational; the next trigger supersedes the part
            self._write(reg.ACK_SEQ, [seq])

    def _service(self) -> None:
        """Keep ROBOT_HEARTBEAT moving (>= 5 Hz) unless a heartbeat-stop is injected."""
        now = time.monotonic()
        if now < self._beat_due or self._beat_paused:
            return
        self._beat = reg.next_seq(self._beat)
        try:
            self._write(reg.ROBOT_HEARTBEAT, [self._beat])
            self._beat_due = now + self.s.heartbeat_ms / 1000.0
        except LinkDownError:
            self._beat_due = now  # retry at once after a reconnect; the poll that follows decides

    def _saw_heartbeat(self, value: int) -> None:
        if self._hb_seen is None or self._hb_seen[0] != value:
            self._hb_moved = self._hb_seen is not None
            self._hb_seen = (value, time.monotonic())

    def _fresh(self) -> bool:
        """The appliance HEARTBEAT changed within appliance_stale_ms (a first value proves nothing)."""
        seen = self._hb_seen
        if seen is None or not self._hb_moved:
            return False
        return (time.monotonic() - seen[1]) * 1000.0 <= self.s.appliance_stale_ms

    def _wait_takt(self) -> None:
        self._idle(self._last_trigger_t + self.s.takt_ms / 1000.0 - time.monotonic())
        self._last_trigger_t = time.monotonic()

    def _injection(self, index: int) -> Inject | None:
        plan = self.fault
        if plan is None or not plan.first <= index <= plan.first + plan.count:
            return None
        if plan.kind == Inject.HEARTBEAT_STOP:
            # A robot whose heartbeat task died while its program goes on: silent for hold_ms, then
            # triggering parts, still silent; the heartbeat resumes after the last injected part.
            self._beat_paused = index < plan.first + plan.count
            if index == plan.first:
                self._idle(plan.hold_ms / 1000.0)
        return plan.kind if index < plan.first + plan.count else None

    def _idle(self, seconds: float) -> None:
        """Keep polling (and beating, unless paused) without triggering, for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stop.is_set():
            self._service()
            with contextlib.suppress(LinkDownError):
                self._read_block()
            self.stop.wait(max(0.0, min(self.s.poll_ms / 1000.0, end - time.monotonic())))


def default_hold_ms(kind: Inject) -> float:
    """A heartbeat-stop must outlast the appliance's staleness threshold (1 s by default); a link drop
    shorter than the deadline lets the part in flight be decided after the reconnect."""
    return 1500.0 if kind == Inject.HEARTBEAT_STOP else 300.0
