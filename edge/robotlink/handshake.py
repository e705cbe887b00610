"""The robot handshake as a pure state machine: the part ledger and the lineside register image.

No I/O and no threads: a transport (Modbus server, later a Modbus client) feeds it robot writes and
ticks, reads `snapshot()`, and forwards the events it returns. Every call is one atomic update.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Decision, Verdict
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import (
    AlarmsAckRequested,
    Event,
    Finalised,
    HandshakeCounters,
    RecipeRequested,
    ResultDropped,
    TriggerRequested,
    TriggerSource,
)
from edge.robotlink.ledger import LedgerPart, PartLedger
from edge.robotlink.liveness import RobotHeartbeatWatch
from edge.robotlink.registers import StatusBit, VerdictCode
from edge.robotlink.resultblock import ResultRegisters


class Handshake:
    """Lineside's side of the register handshake; see docs/ROBOT-LINK.md for the rules it implements.

    A trigger is TRIGGER_SEQ changing to a value in 1..32767 that differs from the last accepted
    trigger. Writes of 0 or > 32767 are ignored (counted), and so is a rewrite of the current value, so a
    robot that writes its outputs cyclically never re-triggers. After the sequence is forgotten (SESSION
    change, stale robot heartbeat) the last value may be used again, but only by writing it anew: robot
    programs write TRIGGER_SEQ = 0 with their new SESSION at start.

    STATUS ERROR is a latch: set when ERROR or LATE is published or the interlock is raised, reset by a
    rising edge of CONTROL CLEAR_ERROR (or clear_error()) once the interlock is lowered. A rising edge of
    CONTROL ACK_ALARMS returns an AlarmsAckRequested event and changes nothing here.

    One part is in flight at a time, except that internal (free-running) triggers may keep up to
    `internal_depth` parts in flight (pipelining): each is keyed by its own part_seq, takes only its own
    result, and leaves the ledger exactly once. A robot trigger always supersedes every part in flight.
    """

    def __init__(self, cfg: RobotLinkConfig, clock: Callable[[], float], boot_id: int | None = None) -> None:
        if boot_id is not None and not 1 <= boot_id <= reg.SEQ_MAX:
            raise LinesideError(f"BOOT_ID must be in 1..{reg.SEQ_MAX}, got {boot_id}")
        self._cfg = cfg
        self._clock = clock
        self.boot_id = boot_id if boot_id is not None else secrets.randbelow(reg.SEQ_MAX) + 1
        self.counters = HandshakeCounters()
        now = clock()
        self._result = ResultRegisters()
        self._robot = [0] * reg.ROBOT_COUNT
        self._heartbeat = 1
        self._heartbeat_due = now + cfg.heartbeat_period_ms / 1000.0
        self._ledger = PartLedger(self.boot_id, self.counters)
        self._internal_depth = 1
        self._last_trigger: int | None = None
        self._internal_seq = 0
        self._model_ready = False
        self._camera_ready = False
        self._stream_ready = True  # see set_stream_ready()
        self._error_latched = False
        self._robot_watch = RobotHeartbeatWatch(cfg.robot_heartbeat_timeout_ms, cfg.robot_heartbeat_required)
        self._active_recipe = 0
        self._model_id = 0
        # Set by the worker while records are held unwritten (a warning only: parts go on).
        self.records_warning = False
        # Set by the worker from the alarms worker's state: ALARM's word (a warning only: parts go on).
        self.alarm_word = 0

    # ---- state for status pages and the worker ----
    @property
    def enabled(self) -> bool:
        return not self._cfg.require_enable or bool(self._robot_reg(reg.CONTROL) & reg.ControlBit.ENABLE)

    @property
    def ready(self) -> bool:
        return self._model_ready and self._camera_ready and self._stream_ready and self.enabled

    @property
    def interlock_raised(self) -> bool:
        return self._robot_watch.interlock_raised

    @property
    def in_flight_part_seq(self) -> int | None:
        """The oldest part in flight, if any."""
        return self._ledger.oldest_seq()

    @property
    def in_flight_count(self) -> int:
        return len(self._ledger)

    def set_internal_depth(self, depth: int) -> None:
        """How many internally triggered parts may be in flight at once (free-run pipelining)."""
        if not 1 <= depth <= 8:
            raise LinesideError(f"robot link: internal trigger depth must be in 1..8, got {depth}")
        self._internal_depth = depth

    def robot_registers(self) -> list[int]:
        """A copy of the robot block (offsets 16..21) as last written."""
        return list(self._robot)

    # ---- inputs ----
    def on_robot_write(self, offset: int, values: Sequence[int]) -> list[Event]:
        """Apply a robot write to the robot block; a new trigger is fully handled before this returns."""
        reg.check_robot_write(offset, values)
        end = offset + len(values)
        now = self._clock()
        events = self._expire_budget(now) + self._check_robot_heartbeat(now)
        before = list(self._robot)
        self._robot[offset - reg.ROBOT_FIRST : end - reg.ROBOT_FIRST] = list(values)
        written = set(range(offset, end))

        def changed(register: int) -> bool:
            return register in written and self._robot_reg(register) != before[register - reg.ROBOT_FIRST]

        # Session, heartbeat and control first, so a block written together with a trigger counts.
        if changed(reg.SESSION):
            events += self._forget(now, "robot SESSION changed")
        if reg.ROBOT_HEARTBEAT in written and (
            lowered := self._robot_watch.written(now, changed(reg.ROBOT_HEARTBEAT))
        ):
            events.append(lowered)
        if changed(reg.CONTROL):
            events += self._control_changed(before[reg.CONTROL - reg.ROBOT_FIRST], now)
        if changed(reg.RECIPE):
            events.append(RecipeRequested(self._robot_reg(reg.RECIPE)))
        if changed(reg.TRIGGER_SEQ):
            seq = self._robot_reg(reg.TRIGGER_SEQ)
            if not 1 <= seq <= reg.SEQ_MAX:
                self.counters.ignored_triggers += 1
            elif seq != self._last_trigger:
                events += self._trigger(seq, "robot", now)
        return events

    def trigger_internal(self) -> list[Event]:
        """Free-running mode: trigger the next sequence (1..32767, wrapping, never 0) by the same path."""
        seq = reg.next_seq(self._internal_seq)
        if seq == self._last_trigger:
            seq = reg.next_seq(seq)
        self._internal_seq = seq
        now = self._clock()
        return self._expire_budget(now) + self._trigger(seq, "internal", now)

    def on_result(self, part_seq: int, decision: Decision, latency_ms: float, boot_id: int) -> list[Event]:
        """An inspection ended. Applied only to the part in flight (same boot_id and part_seq), else dropped.

        latency_ms is the inspection's own figure, kept for the record only: lateness and LATENCY_MS are
        measured on this handshake's clock from the trigger.
        """
        now = self._clock()
        part = self._ledger.get(part_seq)
        if part is None or boot_id != self.boot_id:
            self.counters.late_dropped += 1
            why = "from another boot" if boot_id != self.boot_id else "no longer in flight"
            reason = (
                f"result for part {boot_id}/{part_seq} dropped: {why} (inspection took {latency_ms:.0f} ms)"
            )
            return [ResultDropped(part_seq, boot_id, reason, decision)]
        elapsed_ms = (now - part.t) * 1000.0
        budget = self._cfg.publish_budget_ms
        if elapsed_ms > budget:
            why = f"FAULT (timeout): result after {elapsed_ms:.0f} ms > budget {budget} ms, published LATE"
            return [self._publish_late(part, now, (why, *decision.reasons), decision)]
        if decision.verdict is Verdict.FAULT:
            self.counters.errors += 1
            self._publish(part, VerdictCode.ERROR, now, error=decision.error)
            code = VerdictCode.ERROR
        else:
            code = VerdictCode.ACCEPT if decision.verdict is Verdict.ACCEPT else VerdictCode.REJECT
            if code is VerdictCode.ACCEPT:
                self.counters.accepts += 1
            else:
                self.counters.rejects += 1
            defect = 0 if decision.top_class_id is None else decision.top_class_id + 1
            position = decision.robot_position if code is VerdictCode.REJECT else None
            self._publish(
                part, code, now, defect=defect, score=decision.top_confidence * 1000.0, position=position
            )
        final = self._ledger.finalise(
            part, now, decision.verdict, decision.error, decision.reasons, published=code, decision=decision
        )
        return [final]

    def tick(self) -> list[Event]:
        """Advance time: HEARTBEAT, the in-flight budget, and the robot heartbeat's staleness."""
        now = self._clock()
        events: list[Event] = []
        if initial := self._robot_watch.initial_state():
            events.append(initial)
        if now >= self._heartbeat_due:
            self._heartbeat = reg.next_seq(self._heartbeat)
            period = self._cfg.heartbeat_period_ms / 1000.0
            # One step per tick: a stalled loop shows as a slow heartbeat, not a jump.
            self._heartbeat_due = max(self._heartbeat_due + period, now)
        events += self._expire_budget(now)
        events += self._check_robot_heartbeat(now)
        return events

    def set_ready(self, model_ready: bool, camera_ready: bool) -> list[Event]:
        """Model warmed up, camera delivering. Losing either faults the part in flight (never passes it)."""
        self._model_ready, self._camera_ready = model_ready, camera_ready
        if not len(self._ledger) or (model_ready and camera_ready):
            return []
        error = ErrorCode.CAMERA if not camera_ready else ErrorCode.MODEL
        return self._fault_in_flight(self._clock(), error, f"{error.kind} lost while the part was in flight")

    def set_stream_ready(self, ready: bool) -> None:
        """Whether the result stream's subscribers had time to (re)connect since the robot link started;
        no trigger is taken before (docs/architecture.md, the result stream)."""
        self._stream_ready = ready

    def set_recipe(self, number: int) -> None:
        """ACTIVE_RECIPE: the recipe the appliance is inspecting with now."""
        if not 0 <= number <= reg.MAX_REGISTER:
            raise LinesideError(f"robot link: ACTIVE_RECIPE must be in 0..{reg.MAX_REGISTER}, got {number}")
        self._active_recipe = number

    def set_model(self, sha256_hex: str | None) -> None:
        """MODEL_ID: the low 15 bits of the active model's sha256 (0 = no model)."""
        try:
            self._model_id = reg.model_id(sha256_hex) if sha256_hex else 0
        except ValueError:
            raise LinesideError(f"robot link: MODEL_ID needs a hex sha256, got {sha256_hex!r}") from None

    def clear_error(self) -> None:
        """Reset the STATUS ERROR latch (as CLEAR_ERROR does); it stays set while the interlock is raised."""
        self._error_latched = self._robot_watch.interlock_raised

    def link_lost(self, reason: str) -> list[Event]:
        """Role (b): the connection to the robot dropped. The part in flight can no longer be shown to
        the robot, so it is failed (FAULT LINK) and the result cleared, as on a session change."""
        return self._forget(self._clock(), f"robot link lost ({reason})")

    def shutdown(self, reason: str = "the appliance is stopping") -> list[Event]:
        """Fault the part in flight (published as ERROR SHUTDOWN) so that it still gets its record."""
        self._model_ready = False
        return self._fault_in_flight(self._clock(), ErrorCode.SHUTDOWN, reason)

    # ---- output ----
    def snapshot(self) -> list[int]:
        """A consistent copy of the lineside block (offsets 0..15) for one read."""
        block = [0] * reg.LINESIDE_COUNT
        block[reg.STATUS] = self._status()
        block[reg.HEARTBEAT] = self._heartbeat
        block[reg.BOOT_ID] = self.boot_id
        self._result.write_into(block)
        block[reg.CHECK] = reg.check_word(block)
        block[reg.ACTIVE_RECIPE] = self._active_recipe
        block[reg.MODEL_ID] = self._model_id
        block[reg.INSPECTIONS] = self.counters.inspections % (reg.MAX_REGISTER + 1)
        return block

    def warnings(self) -> list[int]:
        """The lineside warnings after the robot block (offsets 22..): ALARM."""
        return [max(0, min(reg.MAX_REGISTER, self.alarm_word))]

    # ---- internals ----
    def _robot_reg(self, register: int) -> int:
        return self._robot[register - reg.ROBOT_FIRST]

    def _status(self) -> int:
        bits = StatusBit(0)
        if self.ready:
            bits |= StatusBit.READY
        if len(self._ledger):
            bits |= StatusBit.BUSY
        if self._result.valid:
            bits |= StatusBit.RESULT_VALID
        if self._error_latched:
            bits |= StatusBit.ERROR
        if self._robot_watch.ok:
            bits |= StatusBit.ROBOT_HEARTBEAT_OK
        if self.records_warning:
            bits |= StatusBit.RECORDS_WARNING
        if self.alarm_word:
            bits |= StatusBit.ALARM_WARNING
        return int(bits)

    def _refusal(self) -> tuple[ErrorCode, str] | None:
        if not self.enabled:
            return ErrorCode.DISABLED, "trigger while CONTROL ENABLE is off"
        if self._cfg.robot_heartbeat_required and not self._robot_watch.ok:
            return ErrorCode.LINK, "trigger while the robot heartbeat is not moving"
        readiness = (
            ("model", self._model_ready),
            ("camera", self._camera_ready),
            ("result stream", self._stream_ready),
        )
        if not all(ok for _, ok in readiness):
            missing = " and ".join(name for name, ok in readiness if not ok)
            return ErrorCode.NOT_READY, f"trigger before the appliance was READY ({missing} not ready)"
        return None

    def _trigger(self, seq: int, source: TriggerSource, now: float) -> list[Event]:
        """Register a part: orphan the one in flight, clear the result, ACK, then inspect or refuse it."""
        events: list[Event] = []
        depth = self._internal_depth if source == "internal" else 1
        while len(self._ledger) >= depth:
            oldest = self._ledger.parts()[0]
            self.counters.superseded += 1
            reason = f"FAULT (overload): superseded by trigger {seq} before its result"
            events.append(
                self._ledger.finalise(
                    oldest, now, Verdict.FAULT, ErrorCode.OVERLOAD, (reason,), published=None
                )
            )
        self._last_trigger = seq
        part = self._ledger.new_part(seq, now, source)
        self._result.acknowledge(seq)
        refusal = self._refusal()
        if refusal is None:
            self._ledger.admit(part)
            events.append(TriggerRequested(seq, part.part_seq, self.boot_id, now, source))
            return events
        error, why = refusal
        self.counters.refused += 1
        self.counters.errors += 1
        self._publish(part, VerdictCode.ERROR, now, error=error)
        reasons = (f"FAULT ({error.kind}): {why}",)
        events.append(
            self._ledger.finalise(part, now, Verdict.FAULT, error, reasons, published=VerdictCode.ERROR)
        )
        return events

    def _publish(
        self,
        part: LedgerPart,
        code: VerdictCode,
        now: float,
        *,
        error: ErrorCode = ErrorCode.NONE,
        defect: int = 0,
        score: float = 0.0,
        position: tuple[float, float] | None = None,
    ) -> None:
        """Write all result registers and the position at once (CHECK follows in snapshot()); latch
        ERROR on a fault."""
        latency_ms = (now - part.t) * 1000.0
        self._result.publish(
            part.seq, code, latency_ms, error=error, defect=defect, score=score, position=position
        )
        if code in (VerdictCode.ERROR, VerdictCode.LATE):
            self._error_latched = True

    def _publish_late(
        self, part: LedgerPart, now: float, reasons: tuple[str, ...], decision: Decision | None
    ) -> Finalised:
        self.counters.late_published += 1
        self._publish(part, VerdictCode.LATE, now, error=ErrorCode.TIMEOUT)
        return self._ledger.finalise(
            part,
            now,
            Verdict.FAULT,
            ErrorCode.TIMEOUT,
            reasons,
            published=VerdictCode.LATE,
            late=True,
            decision=decision,
        )

    def _fault_in_flight(self, now: float, error: ErrorCode, why: str) -> list[Event]:
        """Publish ERROR for every part in flight (oldest first) and finalise each as FAULT."""
        events: list[Event] = []
        for part in self._ledger.parts():
            self.counters.errors += 1
            self._publish(part, VerdictCode.ERROR, now, error=error)
            reasons = (f"FAULT ({error.kind}): {why}",)
            events.append(
                self._ledger.finalise(part, now, Verdict.FAULT, error, reasons, published=VerdictCode.ERROR)
            )
        return events

    def _expire_budget(self, now: float) -> list[Event]:
        budget = self._cfg.publish_budget_ms
        events: list[Event] = []
        for part in self._ledger.parts():
            if (now - part.t) * 1000.0 <= budget:
                continue
            self.counters.timeouts += 1
            reasons = (f"FAULT (timeout): no result within {budget} ms, published LATE",)
            events.append(self._publish_late(part, now, reasons, None))
        return events

    def _forget(self, now: float, why: str) -> list[Event]:
        """Clear the result and forget the sequence; the part in flight (if any) is orphaned as FAULT LINK."""
        events: list[Event] = []
        for part in self._ledger.parts():
            self.counters.forgotten += 1
            reasons = (f"FAULT (link): {why} while the part was in flight",)
            events.append(
                self._ledger.finalise(part, now, Verdict.FAULT, ErrorCode.LINK, reasons, published=None)
            )
        self._result.clear()
        self._last_trigger = None
        return events

    def _control_changed(self, before: int, now: float) -> list[Event]:
        control = self._robot_reg(reg.CONTROL)
        if control & reg.ControlBit.CLEAR_ERROR and not before & reg.ControlBit.CLEAR_ERROR:
            self.clear_error()
        # The alarms' acknowledgement leaves the ledger, the result registers and CHECK as they are: it
        # only tells the worker, which passes it to the alarms worker (a warning's business, not a part's).
        events: list[Event] = []
        if control & reg.ControlBit.ACK_ALARMS and not before & reg.ControlBit.ACK_ALARMS:
            events.append(AlarmsAckRequested())
        if self.enabled or not len(self._ledger):
            return events
        return events + self._fault_in_flight(
            now, ErrorCode.DISABLED, "ENABLE switched off while the part was in flight"
        )

    def _check_robot_heartbeat(self, now: float) -> list[Event]:
        """Rule 3: a stale robot heartbeat clears the result, forgets the sequence, raises the interlock."""
        raised = self._robot_watch.check(now)
        if raised is None:
            return []
        self._error_latched = True
        return [*self._forget(now, raised.reason), raised]
