"""The live charts rebuilt after a restart of the alarms worker, from the records of this start of the
appliance: its parts replayed through the p-charts and score drift in pages (the worker's heartbeat goes on
between pages), the recorded acknowledgements released where they were, and the alarms the replay raises
matched against those recorded, so a restart neither loses the baseline nor raises an alarm twice.

Then the replay joins the live stream. A part finalised before the worker subscribed is not on the stream,
and the recorder (a background worker, like this one) may not have written it yet: so the live parts wait
until the records hold the first of them (the recorder writes in the order parts are finalised, so the
records then hold every part before it too), the records being read on meanwhile. Every part is charted
once, from its record or from the stream.

Image drift is not rebuilt: the records keep no measure of every frame (docs/spc.md). Its charts learn again;
one whose alarm the records hold, not acknowledged since, is latched again so the warning stays shown.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import LinesideError
from edge.judge.inspection import Verdict
from edge.records.alarms import RecordedAlarm, recorded_acks, recorded_alarms
from edge.records.model import InspectionRecord
from edge.records.schema import DB_FILE, open_reader, row_to_record, select_record
from edge.spc.ack import Acknowledgement, AckSchedule
from edge.spc.alarm import Alarm, PartKey
from edge.spc.replay import LineCharts

log = logging.getLogger(__name__)

PAGE = 200  # records per read: a page is a few ms of work, so the worker's loop stays short
JOIN_TIMEOUT_S = 10.0  # live parts wait this long at most for the records (a recorder that is down)
# Parts finalised this long before the live stream was subscribed may still be in it (a margin: the stream
# and the records name the same part by the same key, and a part is charted once).
OVERLAP_S = 5.0
AlarmKey = tuple[str, str, PartKey | None]


def alarm_key(alarm: dict[str, Any]) -> AlarmKey:
    """What makes an alarm the same one in a replay: its chart, its rule and the last part of its pattern."""
    parts = alarm.get("parts") or []
    last = (int(parts[-1][0]), int(parts[-1][1])) if parts else None
    return str(alarm["chart"]), str(alarm["rule"]), last


class ChartRestore:
    """Replays the records triggered since `since` (this start) into `charts`: a page per `step()` until
    `done`, then `join()` with the live stream until `joined`.

    `subscribed_at` is when the worker subscribed to the live stream: the parts replayed that were finalised
    after it (less OVERLAP_S) are remembered in `replayed`, and the worker skips them when they arrive live.
    """

    def __init__(self, charts: LineCharts, records_dir: Path, since: float, subscribed_at: float) -> None:
        self.charts = charts
        self.records_dir = records_dir
        self.since = since
        self.overlap_from = subscribed_at - OVERLAP_S
        self.done = self.joined = False
        self.parts = self.judged = 0
        self.replayed: set[PartKey] = set()
        self.recorded: list[RecordedAlarm] = []
        self._missed: list[Alarm] = []  # raised by the replay but never recorded (the worker was down)
        self._known: set[AlarmKey] = set()
        self._acks: list[Acknowledgement] = []
        self._after_id = 0
        self._conn: sqlite3.Connection | None = None
        self._waiting: deque[InspectionRecord] = deque()
        self._waiting_since = 0.0
        self._unreadable_said = False
        self._schedule = AckSchedule(())
        self._open()
        if self._conn is None:
            self._replayed_all()  # no records yet (a first start): nothing to replay, only to join

    def _open(self) -> None:
        """The records of this start: its alarms, its acknowledgements, and a reader for its parts."""
        if not (self.records_dir / DB_FILE).is_file():
            return  # the recorder has not created it yet: `join` looks again
        try:
            self.recorded = recorded_alarms(self.records_dir, self.since)
            self._acks = recorded_acks(self.records_dir, self.since)
            self._conn = open_reader(self.records_dir / DB_FILE)
        except (LinesideError, sqlite3.Error) as exc:
            if not self._unreadable_said:  # `join` looks again at every step: said once
                log.warning("line alarms: the records cannot be read yet (%s)", exc)
                self._unreadable_said = True
            return
        self._known = {alarm_key(a.alarm) for a in self.recorded}
        self._schedule = AckSchedule(self._acks)
        self._schedule.start(self.charts.acknowledge)

    def step(self) -> bool:
        """Replay the next page; True once every record written so far is replayed."""
        if not self.done and len(self._read()) < PAGE:
            self._replayed_all()
        return self.done

    def join(self, live: Sequence[InspectionRecord], now: float) -> list[InspectionRecord]:
        """Parts from the live stream (`now`: time.monotonic()); the parts to chart from the stream now.
        They wait until the records hold the first of them, or JOIN_TIMEOUT_S at most (a recorder that is
        down: the parts it never wrote are then missing from the charts, and the log says so)."""
        if not self._waiting:
            self._waiting_since = now
        self._waiting.extend(live)
        if self._conn is None:
            self._open()
        for _ in range(5):  # a few pages a call, so that the worker's loop stays short
            if len(self._read()) < PAGE:
                break
        caught_up = False
        while self._waiting and self._waiting[0].key in self.replayed:
            self._waiting.popleft()  # charted from its record
            caught_up = True
        if not caught_up and not (self._waiting and now - self._waiting_since > JOIN_TIMEOUT_S):
            return []
        if not caught_up:
            log.warning("line alarms: the records lag the live parts; parts they lack may go uncharted")
        self.joined = True
        self._schedule.finish(self.charts.acknowledge)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        go_live = [r for r in self._waiting if r.key not in self.replayed]
        self._waiting.clear()
        return go_live

    def missed(self) -> list[Alarm]:
        """The alarms the records' parts raised that were never recorded (to raise now), once each."""
        found, self._missed = self._missed, []
        return found

    def _read(self) -> list[Any]:
        if self._conn is None:
            return []
        # The row id first: pages follow it, which is the order the recorder wrote the parts (as finalised).
        sql = select_record(self._conn).replace("SELECT ", "SELECT id, ", 1)
        try:
            rows = self._conn.execute(
                f"{sql} WHERE id > ? AND triggered_at >= ? ORDER BY id LIMIT ?",
                (self._after_id, self.since, PAGE),
            ).fetchall()
        except sqlite3.Error as exc:
            log.error("line alarms: reading the records stopped at id %d (%s)", self._after_id, exc)
            return []
        for row in rows:
            self._after_id = int(row[0])
            self._feed(row_to_record(row[1:]))
        return rows

    def _feed(self, record: InspectionRecord) -> None:
        self.parts += 1
        self.judged += record.verdict is not Verdict.FAULT
        if record.decided_at >= self.overlap_from:
            self.replayed.add(record.key)
        for alarm in self.charts.add_record(record):
            if alarm_key(alarm.to_json()) not in self._known:
                self._missed.append(alarm)
        self._schedule.after(record.key, self.charts.acknowledge)

    def _replayed_all(self) -> None:
        self.charts.alarms.clear()  # the replay's alarms are the records' (or missed): none is new here
        for name, chart in self.charts.image.charts.items():
            raised = [a.raised_at for a in self.recorded if a.alarm.get("chart") == name]
            acked = [a.acked_at for a in self._acks if name in a.charts]
            if raised and (not acked or max(raised) > max(acked)):
                chart.latch()
        self.done = True
