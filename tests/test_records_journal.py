"""The final-verdict journal (edge/records/journal.py): real files under tmp_path, the real record store."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from edge.errors import ErrorCode
from edge.judge.inspection import Verdict
from edge.records.config import RecordsConfig
from edge.records.journal import JOURNAL_DIR, RETRY_S, JournalWriter, lock_name, segment_name
from edge.records.replay import JournalReplay
from edge.records.store import ORPHAN_MARK, RecordStore
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.handshake import Handshake
from edge.robotlink.registers import StatusBit
from edge.runtime.messages import LedgerEvent, Trigger
from edge.runtime.workers.record_of import record_from_event

BOOT = 321


def trigger(seq: int, boot: int = BOOT) -> Trigger:
    return Trigger(
        boot_id=boot, seq=seq, trigger_seq=seq, recipe=1, t_trigger=time.monotonic(),
        wall_trigger=time.time(), budget_ms=500.0,
    )  # fmt: skip


def triggered(seq: int, boot: int = BOOT) -> LedgerEvent:
    return LedgerEvent(kind="triggered", trigger=trigger(seq, boot))


def final(seq: int, verdict: Verdict = Verdict.REJECT, boot: int = BOOT) -> LedgerEvent:
    error = ErrorCode.TIMEOUT if verdict is Verdict.FAULT else ErrorCode.NONE
    return LedgerEvent(
        kind="finalised", trigger=trigger(seq, boot), verdict=verdict, reasons=(f"{verdict.value} part",),
        error_code=error, latency_ms=12.5, wall_decided=time.time(),
    )  # fmt: skip


def segments(records: Path) -> list[str]:
    return sorted(p.name for p in (records / JOURNAL_DIR).glob("*.jsonl"))


def keys(events: list[LedgerEvent]) -> list[tuple[str, int]]:
    return [(e.kind, e.trigger.seq) for e in events]


def test_finals_are_read_back_in_order_and_live_triggered_parts_are_not_due(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, BOOT)
    try:
        for seq in (1, 2, 3):
            assert writer.append(triggered(seq))
            assert writer.append(final(seq, Verdict.ACCEPT if seq == 2 else Verdict.REJECT))
        assert writer.append(triggered(4))  # in flight: its boot is alive
        due = JournalReplay(tmp_path, grace_s=0.0).poll()
    finally:
        writer.close()
    assert keys(due) == [("finalised", 1), ("finalised", 2), ("finalised", 3)]
    assert [e.verdict for e in due] == [Verdict.REJECT, Verdict.ACCEPT, Verdict.REJECT]


def test_a_final_waits_its_grace_for_the_ledger_message(tmp_path: Path) -> None:
    now = [100.0]
    writer = JournalWriter(tmp_path, BOOT)
    writer.append(final(1))
    replay = JournalReplay(tmp_path, grace_s=2.0, clock=lambda: now[0])
    assert replay.poll() == []
    now[0] += 2.5
    assert keys(replay.poll()) == [("finalised", 1)]
    assert keys(replay.poll(force=False)) == [("finalised", 1)]  # due until settled
    replay.settle((BOOT, 1))
    assert replay.poll() == []
    writer.close()


def test_torn_last_line_of_a_dead_boot_is_skipped_with_a_log_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(tmp_path, BOOT)
    writer.append(final(1))
    writer.append(final(2))
    writer.close()  # the boot is dead: its last segment is closed
    path = tmp_path / JOURNAL_DIR / segment_name(BOOT, 0)
    whole = final(3).model_dump_json().encode()
    with path.open("ab") as fh:
        fh.write(whole[: len(whole) // 2])  # a kill in the middle of the write
    replay = JournalReplay(tmp_path, grace_s=0.0)
    with caplog.at_level(logging.WARNING, logger="edge.records.replay"):
        due = replay.poll()
    assert keys(due) == [("finalised", 1), ("finalised", 2)]
    assert replay.counts["torn"] == 1
    assert "torn last line" in caplog.text


def test_a_partly_written_line_of_a_live_segment_is_read_once_it_is_complete(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, BOOT)
    writer.append(final(1))
    path = tmp_path / JOURNAL_DIR / segment_name(BOOT, 0)
    whole = (final(2).model_dump_json() + "\n").encode()
    with path.open("ab") as fh:
        fh.write(whole[:40])
    replay = JournalReplay(tmp_path, grace_s=0.0)
    assert keys(replay.poll()) == [("finalised", 1)]
    with path.open("ab") as fh:
        fh.write(whole[40:])
    assert keys(replay.poll()) == [("finalised", 1), ("finalised", 2)]
    assert replay.counts["torn"] == 0
    writer.close()


def test_a_part_triggered_under_a_dead_boot_without_a_final_is_due_as_an_orphan(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, BOOT)
    writer.append(triggered(1))
    writer.append(final(1))
    writer.append(triggered(2))
    replay = JournalReplay(tmp_path, grace_s=0.0)
    assert keys(replay.poll()) == [("finalised", 1)]  # alive: part 2 is only in flight
    writer.close()  # (a SIGKILL releases the lock the same way)
    assert keys(replay.poll()) == [("finalised", 1), ("triggered", 2)]


def test_segments_are_deleted_once_closed_and_settled_never_the_live_one(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, BOOT, segment_lines=2)
    for seq in (1, 2, 3):
        writer.append(final(seq))
    assert segments(tmp_path) == [segment_name(BOOT, 0), segment_name(BOOT, 1)]
    replay = JournalReplay(tmp_path, grace_s=0.0)
    replay.poll()
    replay.settle((BOOT, 1))
    assert replay.delete_finished() == 0  # part 2 of segment 0 is not in the database yet
    for seq in (2, 3):
        replay.settle((BOOT, seq))
    assert replay.delete_finished() == 1
    assert segments(tmp_path) == [segment_name(BOOT, 1)]  # the writer's current segment stays
    writer.close()
    replay.poll()
    assert replay.delete_finished() == 1
    assert segments(tmp_path) == []
    assert not (tmp_path / JOURNAL_DIR / lock_name(BOOT)).exists()


def test_a_restarted_writer_with_the_same_boot_id_never_appends_to_old_segments(tmp_path: Path) -> None:
    first = JournalWriter(tmp_path, BOOT)
    first.append(final(1))
    first.close()
    second = JournalWriter(tmp_path, BOOT)
    second.append(final(2))
    second.close()
    assert segments(tmp_path) == [segment_name(BOOT, 0), segment_name(BOOT, 1)]


def test_an_unwritable_journal_holds_finals_in_memory_and_writes_them_in_order_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / JOURNAL_DIR
    blocker.write_text("not a folder")  # mkdir fails like a read-only or broken filesystem would
    writer = JournalWriter(tmp_path, BOOT, fsync_every_s=0.05)
    try:
        with caplog.at_level(logging.ERROR, logger="edge.records.journal"):
            assert writer.append(final(1)) is False
            assert writer.append(final(2)) is False
        assert writer.failing
        assert writer.stats()["held"] == 2
        assert caplog.text.count("cannot write") == 1  # logged once, not per part
        blocker.unlink()
        deadline = time.monotonic() + RETRY_S + 3.0
        while writer.stats()["held"] and time.monotonic() < deadline:  # the sync thread retries
            time.sleep(0.05)
        assert writer.append(final(3))
        assert not writer.failing
    finally:
        writer.close()
    assert keys(JournalReplay(tmp_path, grace_s=0.0).poll()) == [("finalised", s) for s in (1, 2, 3)]


def test_held_finals_are_bounded(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_DIR).write_text("not a folder")
    writer = JournalWriter(tmp_path, BOOT, max_held=3)
    for seq in range(1, 6):
        writer.append(final(seq))
    assert writer.stats()["held"] == 3
    assert writer.counts["held_dropped"] == 2
    writer.close()


def orphan(seq: int) -> LedgerEvent:
    return LedgerEvent(
        kind="finalised", trigger=trigger(seq), verdict=Verdict.FAULT, error_code=ErrorCode.WORKER,
        reasons=(f"FAULT (worker): robot link stopped {ORPHAN_MARK}",), wall_decided=time.time(),
    )  # fmt: skip


def test_a_replayed_final_upgrades_an_orphan_record_and_never_adds_a_second(tmp_path: Path) -> None:
    with RecordStore(RecordsConfig(dir=tmp_path / "records")) as store:
        store.add(record_from_event(orphan(1)))
        store.add(record_from_event(final(2, Verdict.FAULT)))  # a real FAULT is not an orphan
        assert store.stored_kind(BOOT, 1) == "orphan"
        assert store.stored_kind(BOOT, 2) == "final"
        assert store.stored_kind(BOOT, 3) == "none"
        assert store.upgrade_orphan(record_from_event(final(1, Verdict.REJECT)))
        assert store.upgrade_orphan(record_from_event(final(1, Verdict.ACCEPT))) is False  # once only
        assert store.upgrade_orphan(record_from_event(final(2, Verdict.ACCEPT))) is False
        assert store.get(BOOT, 1).verdict is Verdict.REJECT
        assert store.get(BOOT, 1).reasons == ("REJECT part",)
        assert store.get(BOOT, 2).verdict is Verdict.FAULT
        assert store.stats().records == 2


def test_records_warning_is_a_status_bit_that_leaves_ready_alone() -> None:
    handshake = Handshake(RobotLinkConfig(), clock=time.monotonic)
    handshake.set_ready(True, True)
    assert not handshake.snapshot()[reg.STATUS] & StatusBit.RECORDS_WARNING
    handshake.records_warning = True
    status = handshake.snapshot()[reg.STATUS]
    assert status & StatusBit.RECORDS_WARNING
    assert status & StatusBit.READY == handshake.ready * StatusBit.READY  # never stops inspections


def test_a_boot_killed_without_closing_its_journal_is_logged_once_a_clean_stop_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clean = JournalWriter(tmp_path, BOOT)
    assert clean.append(final(1))
    clean.close()
    killed = JournalWriter(tmp_path, BOOT + 1)
    assert killed.append(final(1, boot=BOOT + 1))
    # A SIGKILL: the kernel drops the flock with the process, and nothing else runs.
    assert killed._lock_fd is not None
    os.close(killed._lock_fd)
    killed._lock_fd = None
    killed._stop.set()
    replay = JournalReplay(tmp_path, grace_s=0.0)
    with caplog.at_level(logging.WARNING, logger="edge.records.replay"):
        replay.poll(force=True)
        replay.poll(force=True)
    unclean = [r.getMessage() for r in caplog.records if "without a clean stop" in r.getMessage()]
    assert unclean == [f"journal: boot {BOOT + 1} ended without a clean stop (killed, crashed or power lost);"
                       " its parts are settled from the journal"]  # fmt: skip
