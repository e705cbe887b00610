"""Acknowledging line alarms and rebuilding the charts from the records (edge/spc/ack.py, restore.py), on
real charts and a real records database: an acknowledgement releases only the charts it names and a lasting
shift alarms again; a replay releases the charts where the recorded acknowledgements did; a restart's
rebuild keeps the baseline and the latches, raises no recorded alarm twice and raises one it never recorded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.judge.inspection import Verdict
from edge.records.alarms import insert_ack, insert_alarm, recorded_acks
from edge.records.config import RecordsConfig
from edge.records.model import InspectionRecord
from edge.records.schema import DB_FILE
from edge.records.store import RecordStore
from edge.spc.ack import Acknowledgement, check_chart_name
from edge.spc.alarm import Alarm
from edge.spc.config import PChartConfig, SpcConfig
from edge.spc.replay import LineCharts, replay
from edge.spc.restore import JOIN_TIMEOUT_S, PAGE, ChartRestore

T0 = 1_800_000_000.0  # this start of the appliance began here
# Subgroups of 10, 5 learnt; a latch released only by an acknowledgement (release 1000), as in the line tests.
CONFIG = SpcConfig(pchart=PChartConfig(subgroup=10, baseline_subgroups=5, release=1000))
STEADY = "ggggdggggg" * 5  # 1 in 10 rejected: the baseline's centre
SHIFT = "ddgddddgdd"  # 8 in 10: beyond 3 sigma on the reject rate and the scratch rate


def _record(seq: int, kind: str, boot_id: int = 1, at: float | None = None) -> InspectionRecord:
    rejected = kind == "d"
    verdict = Verdict.REJECT if rejected else Verdict.ACCEPT
    score = 0.9 if rejected else 0.2
    stage = {
        "stage": "detector",
        "kind": "detect",
        "verdict": verdict.value,
        "score": score,
        "threshold": 0.5,
    }
    return InspectionRecord(
        boot_id=boot_id,
        seq=seq,
        part_id=None,
        recipe="r",
        verdict=verdict,
        reasons=(verdict.value,),
        error_code=0,
        detections=(),
        model_name="m",
        model_version="1",
        model_sha256="",
        triggered_at=T0 + seq if at is None else at,
        decided_at=T0 + seq if at is None else at,
        latency_ms={},
        near_threshold=False,
        late=False,
        stages=(stage,),
        evidence={"rule": {"code": "detect.reject", "class": "scratch"}} if rejected else {},
    )


def _records(pattern: str, first: int = 1) -> list[InspectionRecord]:
    return [_record(first + i, kind) for i, kind in enumerate(pattern)]


def _feed(charts: LineCharts, records: list[InspectionRecord]) -> list[Alarm]:
    return [alarm for record in records for alarm in charts.add_record(record)]


def test_an_acknowledgement_releases_the_charts_it_names_and_a_lasting_shift_alarms_again() -> None:
    charts = LineCharts(CONFIG)
    assert _feed(charts, _records(STEADY)) == []
    shift = _feed(charts, _records(SHIFT, 51))
    assert [a.chart for a in shift] == ["reject_rate", "class_rate:scratch"]
    assert charts.active() == ["reject_rate", "class_rate:scratch"]
    assert _feed(charts, _records(SHIFT, 61)) == []  # latched: one alarm per shift
    assert charts.acknowledge(["reject_rate"]) == ["reject_rate"]
    assert charts.active() == ["class_rate:scratch"]
    assert charts.acknowledge(["class_rate"]) == ["class_rate:scratch"]  # a kind: every class's chart
    assert charts.acknowledge() == []  # nothing left in alarm
    # Acknowledged, not cured: the shift still there raises again by the rules on the next subgroup.
    assert [a.chart for a in _feed(charts, _records(SHIFT, 71))] == ["reject_rate", "class_rate:scratch"]


@pytest.mark.parametrize("name", ["reject_rate", "class_rate", "class_rate:scratch", "brightness", "score"])
def test_a_chart_name_is_a_chart_or_a_kind(name: str) -> None:
    assert check_chart_name(name) == name


@pytest.mark.parametrize("name", ["reject", "class_rate:", "brightness:x", "", "score:high"])
def test_a_name_that_is_no_chart_is_refused_naming_the_charts(name: str) -> None:
    with pytest.raises(ValueError, match="reject_rate, class_rate, brightness"):
        check_chart_name(name)


def test_a_replay_releases_the_charts_where_the_recorded_acknowledgements_did() -> None:
    records = _records(STEADY + SHIFT + STEADY[:30] + SHIFT)
    live = LineCharts(CONFIG)
    _feed(live, records[:65])  # the alarm, then 5 parts
    released = live.acknowledge()
    ack = Acknowledgement(T0 + 65.5, "robot", None, tuple(released), live.last_part)
    assert ack.after_part == (1, 65)
    _feed(live, records[65:])
    acked, _ = replay(records, CONFIG, acks=[ack])
    unacked, _ = replay(records, CONFIG)
    assert [a.to_json() for a in acked.alarms] == [a.to_json() for a in live.alarms]
    assert len(live.alarms) == 4  # the second shift alarmed again: it was acknowledged in between
    assert len(unacked.alarms) == 2  # without the acknowledgement the first latch would still hold


def _store(tmp_path: Path, records: list[InspectionRecord]) -> Path:
    config = RecordsConfig.model_validate({"dir": tmp_path / "records", "quota_mb": 10.0})
    with RecordStore(config) as store:
        for record in records:
            store.add(record)
    return config.dir


def _restore(records_dir: Path, charts: LineCharts) -> ChartRestore:
    restore = ChartRestore(charts, records_dir, since=T0, subscribed_at=T0 + 10_000)
    pages = 0
    while not restore.step():
        pages += 1
        assert pages < 1000
    return restore


def test_a_restart_rebuilds_the_baseline_and_latches_from_this_starts_records_and_raises_nothing_twice(
    tmp_path: Path,
) -> None:
    # A previous start of the appliance, all rejects: were it replayed, the baseline would be far off.
    before = [_record(seq, "d", boot_id=9, at=T0 - 1000 + seq) for seq in range(1, 41)]
    this = _records(STEADY * 5 + SHIFT)  # 250 steady parts (more than a page), then the shift
    assert len(this) > PAGE
    records_dir = _store(tmp_path, before + this)
    live = LineCharts(CONFIG)
    raised = _feed(live, this)
    conn = sqlite3.connect(records_dir / DB_FILE)
    for alarm in raised:  # the alarms worker recorded them as it raised them
        insert_alarm(conn, alarm.to_json(), T0 + 500, 1, None)
    conn.commit()

    rebuilt = LineCharts(CONFIG)
    restore = _restore(records_dir, rebuilt)
    assert (restore.parts, restore.judged) == (len(this), len(this))
    assert rebuilt.rejects.reject.centre == live.rejects.reject.centre == pytest.approx(0.1, abs=0.01)
    assert rebuilt.active() == live.active() == ["reject_rate", "class_rate:scratch"]
    assert restore.missed() == [] and len(restore.recorded) == 2 and rebuilt.alarms == []
    # Where the live line goes on, the rebuilt charts go on alike: the baseline held, no new learning.
    more = _records(STEADY + SHIFT, len(this) + 1)
    assert [a.to_json() for a in _feed(rebuilt, more)] == [a.to_json() for a in _feed(live, more)]


def test_a_restart_replays_an_acknowledgement_and_raises_an_alarm_it_never_recorded(tmp_path: Path) -> None:
    this = _records(STEADY + SHIFT + STEADY[:20] + SHIFT)
    records_dir = _store(tmp_path, this)
    live = LineCharts(CONFIG)
    first = _feed(live, this[:60])
    conn = sqlite3.connect(records_dir / DB_FILE)
    insert_alarm(conn, first[0].to_json(), T0 + 60, 1, None)  # the class chart's alarm was never stored
    insert_ack(conn, Acknowledgement(T0 + 61, "page", "shift-lead", tuple(live.acknowledge()), (1, 60)))
    conn.commit()
    assert [a.charts for a in recorded_acks(records_dir)] == [("reject_rate", "class_rate:scratch")]
    second = _feed(live, this[60:])  # the second shift, after the acknowledgement
    assert [a.chart for a in second] == ["reject_rate", "class_rate:scratch"]

    rebuilt = LineCharts(CONFIG)
    restore = _restore(records_dir, rebuilt)
    # Both of the second shift's alarms and the first's unstored one come back as missed; the stored one not.
    assert [(a.chart, a.index) for a in restore.missed()] == [
        ("class_rate:scratch", 5),
        ("reject_rate", 8),
        ("class_rate:scratch", 8),
    ]
    assert rebuilt.active() == live.active()


@pytest.mark.parametrize(("acked", "latched"), [(False, ["brightness"]), (True, [])])
def test_an_image_chart_in_alarm_stays_latched_across_a_restart_until_acknowledged(
    tmp_path: Path, acked: bool, latched: list[str]
) -> None:
    # Image drift is not replayed (the records keep no measure of every frame), but its warning is not lost.
    records_dir = _store(tmp_path, _records(STEADY))
    brightness = {"chart": "brightness", "rule": "ewma_low", "parts": [[1, 40]]}
    conn = sqlite3.connect(records_dir / DB_FILE)
    insert_alarm(conn, brightness, T0 + 40, 1, None)
    if acked:
        insert_ack(conn, Acknowledgement(T0 + 41, "cli", "someone", ("brightness",), (1, 40)))
    conn.commit()
    rebuilt = LineCharts(CONFIG)
    _restore(records_dir, rebuilt)
    assert rebuilt.active() == latched
    assert rebuilt.acknowledge() == latched  # and an acknowledgement releases it as any latch


def test_live_parts_wait_for_the_records_that_lack_the_parts_before_them_and_each_is_charted_once(
    tmp_path: Path,
) -> None:
    # A worker that subscribed late (both it and the recorder run niced): parts 1-39 are recorded, parts
    # 40-49 were finalised before it subscribed and are not recorded yet, parts 50-60 come on the stream.
    records = _records(STEADY + SHIFT)
    config = RecordsConfig.model_validate({"dir": tmp_path / "records", "quota_mb": 10.0})
    with RecordStore(config) as store:
        for record in records[:39]:
            store.add(record)
        rebuilt = LineCharts(CONFIG)
        restore = ChartRestore(rebuilt, config.dir, since=T0, subscribed_at=T0 + 49.5)
        assert restore.step() and restore.parts == 39
        assert restore.join(records[49:55], now=100.0) == []  # they wait: the records lack 40-49
        for record in records[39:52]:
            store.add(record)  # the recorder catches up, past the first live part
        live = restore.join(records[55:], now=101.0)
    assert restore.joined and restore.parts == 52
    assert [r.seq for r in live] == list(range(53, 61))  # the rest come from the stream, each once
    assert [a.chart for a in _feed(rebuilt, live)] == ["reject_rate", "class_rate:scratch"]


def test_live_parts_the_records_never_get_are_charted_from_the_stream_after_the_join_timeout(
    tmp_path: Path,
) -> None:
    records = _records(STEADY + SHIFT)
    records_dir = _store(tmp_path, records[:50])
    restore = ChartRestore(LineCharts(CONFIG), records_dir, since=T0, subscribed_at=T0 + 50.5)
    assert restore.step()
    assert restore.join(records[50:55], now=100.0) == []
    assert restore.join(records[55:], now=100.0 + JOIN_TIMEOUT_S / 2) == []
    live = restore.join((), now=100.0 + JOIN_TIMEOUT_S + 0.1)  # a recorder that is down
    assert restore.joined and [r.seq for r in live] == list(range(51, 61))
