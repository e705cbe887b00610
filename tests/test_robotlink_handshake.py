"""Table tests over the robot link's Handshake state machine, on a fake clock (no I/O)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Decision, Verdict
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import (
    AlarmsAckRequested,
    Event,
    Finalised,
    InterlockChanged,
    ResultDropped,
    TriggerRequested,
)
from edge.robotlink.handshake import Handshake
from edge.robotlink.registers import StatusBit, VerdictCode

ACCEPT = Decision(Verdict.ACCEPT, ("ACCEPT: no defect",))
REJECT = Decision(Verdict.REJECT, ("REJECT: scratch 0.91",), top_class_id=2, top_confidence=0.912)
MODEL_FAULT = Decision.fault(ErrorCode.MODEL, "inference raised")
E = TypeVar("E")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1000.0


def of_type(events: Sequence[object], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def make(boot_id: int = 77, **overrides: Any) -> tuple[Handshake, FakeClock]:
    clock = FakeClock()
    return Handshake(RobotLinkConfig(**overrides), clock, boot_id=boot_id), clock


def live(**overrides: Any) -> tuple[Handshake, FakeClock]:
    """A handshake with a robot that enabled it and whose heartbeat moves, model and camera ready."""
    hs, clock = make(**overrides)
    hs.on_robot_write(reg.ROBOT_HEARTBEAT, [1])
    hs.on_robot_write(reg.ROBOT_HEARTBEAT, [2])
    hs.on_robot_write(reg.CONTROL, [reg.ControlBit.ENABLE])
    hs.set_ready(model_ready=True, camera_ready=True)
    return hs, clock


def trigger(hs: Handshake, seq: int) -> TriggerRequested:
    (requested,) = of_type(hs.on_robot_write(reg.TRIGGER_SEQ, [seq]), TriggerRequested)
    return requested


def result(hs: Handshake, part: TriggerRequested, decision: Decision) -> list[Event]:
    return hs.on_result(part.part_seq, decision, 12.0, part.boot_id)


def verdict_of(block: list[int]) -> int:
    return reg.split_result_word(block[reg.RESULT_WORD])[0]


def test_new_trigger_clears_the_old_result_inside_the_write():
    hs, _ = live()
    first = trigger(hs, 1)
    result(hs, first, ACCEPT)
    assert hs.snapshot()[reg.RESULT_WORD] == reg.result_word(VerdictCode.ACCEPT, 1)

    events = hs.on_robot_write(reg.TRIGGER_SEQ, [2])

    block = hs.snapshot()
    assert block[reg.TRIGGER_ACK_SEQ] == 2
    assert block[reg.RESULT_WORD : reg.LATENCY_MS + 1] == [0] * 6
    assert block[reg.STATUS] & StatusBit.BUSY
    assert not block[reg.STATUS] & StatusBit.RESULT_VALID
    (requested,) = of_type(events, TriggerRequested)
    assert (requested.seq, requested.part_seq, requested.boot_id, requested.source) == (2, 2, 77, "robot")


def test_result_for_a_superseded_part_is_dropped_never_applied_to_the_current_part():
    hs, _ = live()
    old = trigger(hs, 1)
    events = hs.on_robot_write(reg.TRIGGER_SEQ, [2])
    (orphan,) = of_type(events, Finalised)
    assert (orphan.part_seq, orphan.verdict, orphan.error, orphan.published) == (
        old.part_seq,
        Verdict.FAULT,
        ErrorCode.OVERLOAD,
        None,
    )
    current = of_type(events, TriggerRequested)[0]

    dropped = result(hs, old, ACCEPT)

    assert [type(e) for e in dropped] == [ResultDropped]
    assert hs.snapshot()[reg.RESULT_WORD] == 0
    assert hs.counters.late_dropped == 1 and hs.counters.superseded == 1
    (final,) = of_type(result(hs, current, REJECT), Finalised)
    assert final.part_seq == current.part_seq and final.verdict is Verdict.REJECT


def test_result_from_another_boot_is_dropped():
    hs, _ = live()
    part = trigger(hs, 1)
    events = hs.on_result(part.part_seq, ACCEPT, 5.0, boot_id=part.boot_id + 1)
    assert of_type(events, ResultDropped) and hs.snapshot()[reg.RESULT_WORD] == 0
    assert hs.in_flight_part_seq == part.part_seq


@pytest.mark.parametrize("decision", [ACCEPT, REJECT, MODEL_FAULT])
def test_result_past_the_budget_is_published_late_never_as_its_verdict(decision):
    hs, clock = live()
    part = trigger(hs, 9)
    clock.advance_ms(451)

    (final,) = of_type(result(hs, part, decision), Finalised)

    block = hs.snapshot()
    assert block[reg.RESULT_WORD] == reg.result_word(VerdictCode.LATE, 9)
    assert block[reg.ERROR_CODE] == ErrorCode.TIMEOUT
    assert block[reg.STATUS] & StatusBit.ERROR
    assert final.verdict is Verdict.FAULT and final.late and final.published is VerdictCode.LATE
    assert final.decision == decision
    assert hs.counters.late_published == 1 and hs.counters.accepts == 0


def test_result_just_inside_the_budget_is_still_published():
    hs, clock = live()
    part = trigger(hs, 3)
    clock.advance_ms(449.9)
    result(hs, part, ACCEPT)
    block = hs.snapshot()
    assert block[reg.RESULT_WORD] == reg.result_word(VerdictCode.ACCEPT, 3)
    assert block[reg.LATENCY_MS] == 450


def test_no_result_within_budget_publishes_late_timeout_and_finalises_fault():
    hs, clock = live()
    part = trigger(hs, 4)
    clock.advance_ms(449)
    assert not of_type(hs.tick(), Finalised)
    clock.advance_ms(2)

    (final,) = of_type(hs.tick(), Finalised)

    block = hs.snapshot()
    assert verdict_of(block) == VerdictCode.LATE and block[reg.RESULT_SEQ] == 4
    assert block[reg.ERROR_CODE] == ErrorCode.TIMEOUT
    assert not block[reg.STATUS] & StatusBit.BUSY
    assert (final.verdict, final.error, final.late, final.decision) == (
        Verdict.FAULT,
        ErrorCode.TIMEOUT,
        True,
        None,
    )
    assert "no result within 450 ms" in final.reasons[0]
    assert of_type(result(hs, part, ACCEPT), ResultDropped)
    assert verdict_of(hs.snapshot()) == VerdictCode.LATE
    assert hs.counters.timeouts == 1


@pytest.mark.parametrize(
    ("decision", "code", "defect", "score", "error"),
    [
        (ACCEPT, VerdictCode.ACCEPT, 0, 0, ErrorCode.NONE),
        (REJECT, VerdictCode.REJECT, 3, 912, ErrorCode.NONE),
        (MODEL_FAULT, VerdictCode.ERROR, 0, 0, ErrorCode.MODEL),
    ],
)
def test_in_time_result_publishes_all_registers_at_once(decision, code, defect, score, error):
    hs, clock = live()
    part = trigger(hs, 4100)
    clock.advance_ms(120)

    (final,) = of_type(result(hs, part, decision), Finalised)

    block = hs.snapshot()
    assert block[reg.TRIGGER_ACK_SEQ : reg.LATENCY_MS + 1] == [
        4100,
        reg.result_word(code, 4100),
        4100,
        defect,
        score,
        error,
        120,
    ]
    assert block[reg.CHECK] == reg.check_word(block)
    assert bool(block[reg.STATUS] & StatusBit.RESULT_VALID)
    assert final.verdict is decision.verdict and final.published is code and not final.late
    assert block[reg.INSPECTIONS] == 1
    assert (block[reg.DEFECT_X], block[reg.DEFECT_Y]) == (0, 0)  # no robot_position in these decisions


def test_heartbeat_wraps_from_32767_to_1_and_is_never_0():
    hs, clock = make()
    seen = [hs.snapshot()[reg.HEARTBEAT]]
    for _ in range(32767):
        clock.advance_ms(100)
        hs.tick()
        seen.append(hs.snapshot()[reg.HEARTBEAT])
    assert 0 not in seen
    assert seen[0] == 1 and seen[32766] == 32767 and seen[32767] == 1
    assert all(b == reg.next_seq(a) for a, b in itertools.pairwise(seen))


def test_heartbeat_advances_one_step_per_period_not_per_tick():
    hs, clock = make()
    for _ in range(15):
        clock.advance_ms(10)
        hs.tick()
    assert hs.snapshot()[reg.HEARTBEAT] == 2


def test_crc_is_crc16_modbus():
    assert reg.crc16_modbus_bytes(b"123456789") == 0x4B37
    assert reg.crc16_modbus([0x3132, 0x3334]) == reg.crc16_modbus_bytes(b"1234")


@pytest.mark.parametrize("offset", reg.CHECKED)
def test_check_changes_when_any_checked_register_changes(offset):
    hs, _ = live()
    result(hs, trigger(hs, 321), REJECT)
    block = hs.snapshot()
    for bit in range(15):
        changed = list(block)
        changed[offset] ^= 1 << bit
        assert reg.check_word(changed) != block[reg.CHECK], (offset, bit)
    for value in (0, 1, 32767, block[offset] + 1):
        if value != block[offset]:
            changed = list(block)
            changed[offset] = value
            assert reg.check_word(changed) != block[reg.CHECK], (offset, value)


def test_check_catches_a_torn_read_of_two_results():
    hs, _ = live()
    result(hs, trigger(hs, 1), ACCEPT)
    old = hs.snapshot()
    result(hs, trigger(hs, 2), REJECT)
    new = hs.snapshot()
    torn = old[: reg.RESULT_SEQ] + new[reg.RESULT_SEQ :]
    assert reg.check_word(torn) != torn[reg.CHECK]


@pytest.mark.parametrize("code", [c for c in VerdictCode if c is not VerdictCode.ACCEPT])
def test_every_verdict_code_is_at_hamming_distance_2_or_more_from_accept(code):
    assert bin(code ^ VerdictCode.ACCEPT).count("1") >= 2
    for seq in (1, 0x0FFF, 0x1000, 32767):
        assert 0 <= reg.result_word(code, seq) <= reg.MAX_REGISTER
        assert reg.split_result_word(reg.result_word(code, seq))[0] != VerdictCode.ACCEPT


@pytest.mark.parametrize(
    ("model", "camera", "enable", "ready"),
    [
        (False, False, True, False),
        (True, False, True, False),
        (False, True, True, False),
        (True, True, False, False),
        (True, True, True, True),
    ],
)
def test_ready_requires_model_camera_and_enable(model, camera, enable, ready):
    hs, _ = live()
    hs.set_ready(model_ready=model, camera_ready=camera)
    hs.on_robot_write(reg.CONTROL, [reg.ControlBit.ENABLE if enable else 0])
    assert bool(hs.snapshot()[reg.STATUS] & StatusBit.READY) is ready
    events = hs.on_robot_write(reg.TRIGGER_SEQ, [7])
    if ready:
        assert of_type(events, TriggerRequested)
        return
    (final,) = events
    assert isinstance(final, Finalised) and final.verdict is Verdict.FAULT
    expected = ErrorCode.DISABLED if not enable else ErrorCode.NOT_READY
    block = hs.snapshot()
    assert (final.error, final.published) == (expected, VerdictCode.ERROR)
    assert block[reg.RESULT_WORD] == reg.result_word(VerdictCode.ERROR, 7)
    assert block[reg.ERROR_CODE] == expected and block[reg.TRIGGER_ACK_SEQ] == 7
    assert hs.counters.refused == 1


def test_no_trigger_is_taken_until_the_result_stream_had_its_grace():
    hs, _ = live()
    hs.set_stream_ready(False)  # the robot link just (re)started: subscribers are still reconnecting
    assert not hs.snapshot()[reg.STATUS] & StatusBit.READY
    (final,) = hs.on_robot_write(reg.TRIGGER_SEQ, [3])
    assert isinstance(final, Finalised) and (final.error, final.published) == (
        ErrorCode.NOT_READY,
        VerdictCode.ERROR,
    )
    assert "(result stream not ready)" in final.reasons[0]
    hs.set_stream_ready(True)
    assert hs.snapshot()[reg.STATUS] & StatusBit.READY
    assert trigger(hs, 4).seq == 4


@pytest.mark.parametrize(
    ("model", "camera", "error"), [(True, False, ErrorCode.CAMERA), (False, True, ErrorCode.MODEL)]
)
def test_losing_ready_while_a_part_is_in_flight_faults_it(model, camera, error):
    hs, _ = live()
    part = trigger(hs, 5)
    (final,) = hs.set_ready(model_ready=model, camera_ready=camera)
    assert isinstance(final, Finalised) and final.error is error
    assert verdict_of(hs.snapshot()) == VerdictCode.ERROR
    assert of_type(result(hs, part, ACCEPT), ResultDropped)


def test_disabling_while_a_part_is_in_flight_faults_it():
    hs, _ = live()
    trigger(hs, 5)
    (final,) = hs.on_robot_write(reg.CONTROL, [0])
    assert isinstance(final, Finalised) and final.error is ErrorCode.DISABLED


def test_rewriting_the_same_trigger_does_not_trigger_again():
    hs, _ = live()
    trigger(hs, 5)
    for _ in range(3):
        assert not of_type(hs.on_robot_write(reg.TRIGGER_SEQ, [5, 0, 2]), TriggerRequested)
    assert hs.counters.triggers == 1


@pytest.mark.parametrize("value", [0, 32768, 65535])
def test_invalid_trigger_values_are_ignored_and_counted(value):
    hs, _ = live()
    trigger(hs, 5)
    assert hs.on_robot_write(reg.TRIGGER_SEQ, [value]) == []
    assert (hs.counters.triggers, hs.counters.ignored_triggers) == (1, 1)
    assert hs.snapshot()[reg.TRIGGER_ACK_SEQ] == 5 and hs.in_flight_part_seq == 1


def test_returning_to_the_last_sequence_is_not_a_new_part_within_a_session():
    hs, _ = live()
    trigger(hs, 5)
    hs.on_robot_write(reg.TRIGGER_SEQ, [0])
    assert not of_type(hs.on_robot_write(reg.TRIGGER_SEQ, [5]), TriggerRequested)


def test_session_change_clears_result_forgets_sequence_and_orphans_part():
    hs, _ = live()
    result(hs, trigger(hs, 5), ACCEPT)
    hs.on_robot_write(reg.TRIGGER_SEQ, [0])
    in_flight = trigger(hs, 6)

    events = hs.on_robot_write(reg.SESSION, [4242])

    (orphan,) = of_type(events, Finalised)
    assert (orphan.part_seq, orphan.error, orphan.published) == (in_flight.part_seq, ErrorCode.LINK, None)
    assert hs.snapshot()[reg.TRIGGER_ACK_SEQ : reg.LATENCY_MS + 1] == [0] * 7
    # Forgotten: the old value is a new part once written anew (robots write 0 with their new SESSION).
    hs.on_robot_write(reg.TRIGGER_SEQ, [0])
    assert trigger(hs, 6).seq == 6


def test_session_written_with_a_trigger_in_one_block_forgets_first_then_triggers():
    hs, _ = live()
    trigger(hs, 1)
    events = hs.on_robot_write(reg.TRIGGER_SEQ, [2, 0, 3, 999])  # TRIGGER_SEQ .. SESSION in one write
    assert [type(e) for e in events] == [Finalised, TriggerRequested]
    assert of_type(events, Finalised)[0].error is ErrorCode.LINK and hs.snapshot()[reg.TRIGGER_ACK_SEQ] == 2


def test_first_tick_reports_the_interlock_raised_until_the_robot_heartbeat_moves():
    hs, _ = make()
    assert hs.tick() == [InterlockChanged(True, "no robot heartbeat seen since start")]
    assert hs.tick() == []
    assert hs.on_robot_write(reg.ROBOT_HEARTBEAT, [9]) == []  # a first value proves nothing
    (lowered,) = hs.on_robot_write(reg.ROBOT_HEARTBEAT, [10])
    assert lowered == InterlockChanged(False, "robot heartbeat moving")
    assert hs.snapshot()[reg.STATUS] & StatusBit.ROBOT_HEARTBEAT_OK


def test_stale_robot_heartbeat_raises_interlock_and_clears_result():
    hs, clock = live()
    result(hs, trigger(hs, 8), ACCEPT)
    clock.advance_ms(1000)
    assert hs.tick() == []
    clock.advance_ms(1)

    events = hs.tick()

    assert of_type(events, InterlockChanged)[0].raised and hs.interlock_raised
    block = hs.snapshot()
    assert block[reg.RESULT_WORD] == 0 and block[reg.TRIGGER_ACK_SEQ] == 0
    assert not block[reg.STATUS] & StatusBit.ROBOT_HEARTBEAT_OK
    assert block[reg.STATUS] & StatusBit.ERROR
    (refused,) = hs.on_robot_write(reg.TRIGGER_SEQ, [9])
    assert isinstance(refused, Finalised) and refused.error is ErrorCode.LINK
    assert hs.on_robot_write(reg.ROBOT_HEARTBEAT, [3]) == [InterlockChanged(False, "robot heartbeat moving")]
    assert not hs.interlock_raised


def test_stale_heartbeat_orphans_the_part_in_flight_and_a_cyclic_rewrite_does_not_retrigger():
    hs, clock = live()  # the robot heartbeat last moved now
    clock.advance_ms(900)
    part = trigger(hs, 8)
    clock.advance_ms(101)

    finals = of_type(hs.tick(), Finalised)

    assert [(f.part_seq, f.error, f.published) for f in finals] == [(part.part_seq, ErrorCode.LINK, None)]
    hs.on_robot_write(reg.ROBOT_HEARTBEAT, [4])  # the robot is back and rewrites its old outputs
    assert not of_type(hs.on_robot_write(reg.TRIGGER_SEQ, [8]), TriggerRequested)
    assert of_type(result(hs, part, ACCEPT), ResultDropped)


def test_clear_error_acts_on_its_rising_edge():
    hs, clock = live()
    trigger(hs, 1)
    clock.advance_ms(500)
    hs.tick()
    assert hs.snapshot()[reg.STATUS] & StatusBit.ERROR
    hs.on_robot_write(reg.CONTROL, [reg.ControlBit.ENABLE | reg.ControlBit.CLEAR_ERROR])
    assert not hs.snapshot()[reg.STATUS] & StatusBit.ERROR


def test_ack_alarms_acts_on_its_rising_edge_and_leaves_the_part_and_its_registers_alone():
    hs, _ = live()
    part = trigger(hs, 1)
    result(hs, part, REJECT)
    hs.alarm_word = int(reg.AlarmBit.REJECT_RATE)
    before = hs.snapshot()
    ack = reg.ControlBit.ENABLE | reg.ControlBit.ACK_ALARMS
    rose = hs.on_robot_write(reg.CONTROL, [ack])
    held = hs.on_robot_write(reg.CONTROL, [ack])  # a cyclic rewrite of the held bit: no second edge
    fell = hs.on_robot_write(reg.CONTROL, [reg.ControlBit.ENABLE])
    again = hs.on_robot_write(reg.CONTROL, [ack])
    assert [type(e) for e in rose] == [AlarmsAckRequested] and held == fell == []
    assert [type(e) for e in again] == [AlarmsAckRequested]
    # The handshake only reports it: the result, CHECK, STATUS and ALARM stay what they were (the alarms
    # worker releases the charts, and ALARM follows its next state).
    assert hs.snapshot() == before and hs.warnings() == [int(reg.AlarmBit.REJECT_RATE)]
    assert of_type(result(hs, part, ACCEPT), ResultDropped)  # nothing re-opened the part


def test_demo_without_robot_runs_internal_triggers_and_never_raises_interlock():
    hs, _ = make(robot_heartbeat_required=False, require_enable=False)
    hs.set_ready(model_ready=True, camera_ready=True)
    assert hs.tick() == []
    part = of_type(hs.trigger_internal(), TriggerRequested)[0]
    assert part.source == "internal" and part.seq == 1
    result(hs, part, ACCEPT)
    block = hs.snapshot()
    assert verdict_of(block) == VerdictCode.ACCEPT
    assert block[reg.STATUS] & StatusBit.READY and not block[reg.STATUS] & StatusBit.ROBOT_HEARTBEAT_OK


def test_internal_sequence_wraps_to_1_and_is_never_0():
    hs, _ = make(robot_heartbeat_required=False, require_enable=False)
    hs.set_ready(model_ready=True, camera_ready=True)
    seqs = [of_type(hs.trigger_internal(), TriggerRequested)[0].seq for _ in range(32768)]
    assert 0 not in seqs and seqs[32766] == 32767 and seqs[32767] == 1


def test_shutdown_faults_the_part_in_flight():
    hs, _ = live()
    trigger(hs, 2)
    (final,) = hs.shutdown()
    assert isinstance(final, Finalised) and final.error is ErrorCode.SHUTDOWN
    assert verdict_of(hs.snapshot()) == VerdictCode.ERROR


def test_reserved_registers_carry_recipe_model_and_counters():
    hs, _ = live()
    hs.set_recipe(12)
    hs.set_model("ab" * 31 + "f123")
    result(hs, trigger(hs, 1), MODEL_FAULT)
    block = hs.snapshot()
    assert block[reg.ACTIVE_RECIPE] == 12
    assert block[reg.MODEL_ID] == 0x7123
    assert block[reg.INSPECTIONS] == 1 and hs.counters.faults == 1  # FAULTS is a counter, not a register
    assert block[reg.BOOT_ID] == 77
    with pytest.raises(LinesideError, match="MODEL_ID"):
        hs.set_model("not-hex")


@pytest.mark.parametrize(("offset", "count"), [(reg.CHECK, 1), (reg.INSPECTIONS, 2), (reg.RECIPE, 2)])
def test_write_outside_the_robot_block_is_refused(offset, count):
    hs, _ = live()
    with pytest.raises(LinesideError, match="outside the robot block"):
        hs.on_robot_write(offset, [1] * count)


def test_every_registered_part_is_finalised_exactly_once_and_accept_only_in_time():
    rng = random.Random(1234)
    hs, clock = live()
    requested: dict[int, TriggerRequested] = {}
    finalised: dict[int, Finalised] = {}
    seq = 0
    for _ in range(3000):
        action = rng.random()
        if action < 0.3:
            seq = reg.next_seq(seq)
            events = hs.on_robot_write(reg.TRIGGER_SEQ, [seq])
        elif action < 0.6 and requested:
            latest = rng.random() < 0.7  # mostly the part in flight, sometimes an old one
            part = requested[max(requested) if latest else rng.choice(list(requested))]
            events = result(hs, part, rng.choice([ACCEPT, REJECT, MODEL_FAULT]))
        elif action < 0.65:
            events = hs.on_robot_write(reg.SESSION, [rng.randrange(1, 32768)])
        elif action < 0.7:
            events = hs.set_ready(model_ready=rng.random() < 0.9, camera_ready=True)
        else:
            clock.advance_ms(rng.choice([5, 50, 200, 500]))
            events = hs.on_robot_write(reg.ROBOT_HEARTBEAT, [rng.randrange(1, 32768)]) + hs.tick()
        for event in events:
            if isinstance(event, TriggerRequested):
                requested[event.part_seq] = event
            if isinstance(event, Finalised):
                assert event.part_seq not in finalised, "finalised twice"
                finalised[event.part_seq] = event
                if event.verdict is Verdict.ACCEPT:
                    assert event.latency_ms <= 450 and event.published is VerdictCode.ACCEPT
    open_parts = set(range(1, hs.counters.triggers + 1)) - set(finalised)
    assert open_parts <= {hs.in_flight_part_seq}
    assert hs.counters.inspections == len(finalised)
    assert hs.counters.accepts == sum(f.verdict is Verdict.ACCEPT for f in finalised.values()) > 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"robot_heartbeat_timeout_ms": 500},  # < 3 x the robot's 200 ms cycle
        {"heartbeat_period_ms": 400},  # 1000 ms < 3 x 400 ms
        {"unknown_key": 1},
        {"port": 70000},
    ],
)
def test_config_refuses_unsafe_or_unknown_settings(overrides):
    with pytest.raises(ValidationError):
        RobotLinkConfig(**overrides)


def test_boot_id_is_random_in_range_and_validated():
    hs = Handshake(RobotLinkConfig(), FakeClock())
    assert 1 <= hs.boot_id <= 32767
    with pytest.raises(LinesideError, match="BOOT_ID"):
        Handshake(RobotLinkConfig(), FakeClock(), boot_id=0)


def test_lost_client_link_fails_the_part_in_flight_and_its_later_accept_is_dropped():
    hs, clock = live()
    part = trigger(hs, 5)
    finals = of_type(hs.link_lost("timeout"), Finalised)
    assert [(f.part_seq, f.verdict, f.error) for f in finals] == [
        (part.part_seq, Verdict.FAULT, ErrorCode.LINK)
    ]
    clock.advance_ms(10)
    late = result(hs, part, ACCEPT)
    assert of_type(late, Finalised) == [] and len(of_type(late, ResultDropped)) == 1
    assert verdict_of(hs.snapshot()) != VerdictCode.ACCEPT
