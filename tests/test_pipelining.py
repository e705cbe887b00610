"""Free-run pipelining: two internally triggered parts in flight, each judged on its own frame, each
finalised exactly once; robot triggers keep one part in flight."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Decision, Verdict
from edge.records.query import query
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event, Finalised, ResultDropped, TriggerRequested
from edge.robotlink.handshake import Handshake
from tests.line import lineside, make_station

ACCEPT = Decision(Verdict.ACCEPT, ("ACCEPT: no defect",))
REJECT = Decision(Verdict.REJECT, ("REJECT: scratch 0.91",), top_class_id=0, top_confidence=0.91)


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def pipelined(depth: int = 2, budget_ms: int = 500) -> tuple[Handshake, Clock]:
    clock = Clock()
    cfg = RobotLinkConfig(publish_budget_ms=budget_ms, robot_heartbeat_required=False, require_enable=False)
    hs = Handshake(cfg, clock, boot_id=9)
    hs.set_ready(model_ready=True, camera_ready=True)
    hs.set_internal_depth(depth)
    return hs, clock


def started(events: list[Event]) -> TriggerRequested:
    (requested,) = [e for e in events if isinstance(e, TriggerRequested)]
    return requested


def finals(events: list[Event]) -> list[Finalised]:
    return [e for e in events if isinstance(e, Finalised)]


def test_two_internal_parts_in_flight_each_take_only_their_own_result() -> None:
    hs, _ = pipelined()
    first = started(hs.trigger_internal())
    second = started(hs.trigger_internal())
    assert hs.in_flight_count == 2 and hs.snapshot()[reg.STATUS] & reg.StatusBit.BUSY

    (done_second,) = finals(hs.on_result(second.part_seq, REJECT, 5.0, second.boot_id))
    (done_first,) = finals(hs.on_result(first.part_seq, ACCEPT, 5.0, first.boot_id))

    assert (done_first.part_seq, done_first.verdict) == (first.part_seq, Verdict.ACCEPT)
    assert (done_second.part_seq, done_second.verdict) == (second.part_seq, Verdict.REJECT)
    assert hs.in_flight_count == 0
    # The registers show the last published part, its ACK and verdict from the same part.
    block = hs.snapshot()
    assert block[reg.TRIGGER_ACK_SEQ] == first.seq
    assert block[reg.RESULT_WORD] == reg.result_word(reg.VerdictCode.ACCEPT, first.seq)


def test_a_second_result_for_a_finalised_part_is_dropped_not_applied_to_the_other() -> None:
    hs, _ = pipelined()
    first = started(hs.trigger_internal())
    second = started(hs.trigger_internal())
    hs.on_result(first.part_seq, REJECT, 5.0, first.boot_id)

    again = hs.on_result(first.part_seq, ACCEPT, 5.0, first.boot_id)
    other_boot = hs.on_result(second.part_seq, ACCEPT, 5.0, second.boot_id + 1)

    assert [type(e) for e in again + other_boot] == [ResultDropped, ResultDropped]
    assert hs.in_flight_part_seq == second.part_seq


def test_a_third_internal_trigger_supersedes_only_the_oldest() -> None:
    hs, _ = pipelined()
    first = started(hs.trigger_internal())
    second = started(hs.trigger_internal())

    events = hs.trigger_internal()

    (superseded,) = finals(events)
    assert superseded.part_seq == first.part_seq and superseded.error is ErrorCode.OVERLOAD
    assert hs.in_flight_count == 2 and hs.in_flight_part_seq == second.part_seq


def test_robot_trigger_supersedes_every_part_in_flight() -> None:
    hs, _ = pipelined()
    parts = [started(hs.trigger_internal()) for _ in range(2)]

    events = hs.on_robot_write(reg.TRIGGER_SEQ, [300])

    assert sorted(f.part_seq for f in finals(events)) == [p.part_seq for p in parts]
    assert all(f.verdict is Verdict.FAULT for f in finals(events))
    assert hs.in_flight_count == 1


def test_budget_expiry_and_shutdown_fault_each_part_in_flight_exactly_once() -> None:
    hs, clock = pipelined(budget_ms=100)
    first = started(hs.trigger_internal())
    clock.t += 0.06
    second = started(hs.trigger_internal())
    clock.t += 0.06  # first is past its budget, second is not

    (late,) = finals(hs.tick())
    stopped = finals(hs.shutdown())

    assert late.part_seq == first.part_seq and late.late and late.verdict is Verdict.FAULT
    assert [f.part_seq for f in stopped] == [second.part_seq]
    assert stopped[0].error is ErrorCode.SHUTDOWN and hs.in_flight_count == 0
    assert finals(hs.shutdown()) == []


def test_losing_the_camera_faults_both_parts_in_flight() -> None:
    hs, _ = pipelined()
    parts = [started(hs.trigger_internal()) for _ in range(2)]

    faulted = finals(hs.set_ready(model_ready=True, camera_ready=False))

    assert [f.part_seq for f in faulted] == [p.part_seq for p in parts]
    assert all(f.error is ErrorCode.CAMERA for f in faulted)


def test_depth_outside_one_to_eight_is_refused() -> None:
    hs, _ = pipelined()
    with pytest.raises(LinesideError, match="depth"):
        hs.set_internal_depth(0)


def test_free_run_line_pipelines_without_mixing_parts(tmp_path: Path) -> None:
    pattern = "gddgdggdgg"
    config, _ = make_station(tmp_path, pattern, takt_ms=0.0)

    proc = lineside("run", str(config), "--max-parts", "30")

    assert proc.returncode == 0, proc.stderr[-2000:]
    records = query(tmp_path / "records" / "records.db")
    assert [r.seq for r in records] == list(range(1, 31))
    expected = ["REJECT" if pattern[(r.seq - 1) % len(pattern)] == "d" else "ACCEPT" for r in records]
    assert [r.verdict.value for r in records] == expected
    # Pipelined: some part was triggered before the one before it was decided.
    overlaps = sum(b.triggered_at < a.decided_at for a, b in itertools.pairwise(records))
    assert overlaps > 0


def test_a_folder_played_once_judges_every_file_the_read_ahead_never_ends_it_early(tmp_path: Path) -> None:
    pattern = "gdgdd"
    config, _ = make_station(tmp_path, pattern, takt_ms=0.0, loop=False)

    proc = lineside("run", str(config))

    assert proc.returncode == 0, proc.stderr[-2000:]
    records = query(tmp_path / "records" / "records.db")
    judged = [r.verdict.value for r in records if r.verdict is not Verdict.FAULT]
    assert judged == ["REJECT" if kind == "d" else "ACCEPT" for kind in pattern]
    assert [r.verdict.value for r in records][: len(pattern)] == judged  # no FAULT before the last file
