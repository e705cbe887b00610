"""The alarms worker: line alarms (edge/spc, docs/spc.md) on the live line (optional, `spc.enabled`).

It listens to the robot link's final verdicts and to inference's image measures, feeds the charts part by
part, and for each alarm stores it in the records with its chart picture, then publishes the alarm state
(AlarmState) to the robot link (STATUS bit, ALARM register), the status page and the fleet feed. An
observer like the status page: no verdict waits for it or depends on it, and its failures are its own.
Acknowledgements (AlarmAck: the robot's CONTROL bit, the page's button, `lineside alarms ack`) release the
latched charts. On start it rebuilds the charts from the records of this start of the appliance
(edge/spc/restore.py), so a restart keeps the baseline and the latches. It writes only the `alarms` and
`alarm_acks` tables, a row per alarm or acknowledgement (a few a shift): SQLite's WAL serialises it with
the recorder's short transactions, and the database's busy timeout bounds the wait.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections import Counter, deque
from pathlib import Path

import zmq

from edge.errors import LinesideError
from edge.i18n import render
from edge.judge.inspection import Verdict
from edge.records.alarms import ALARMS_DIR, insert_ack, insert_alarm
from edge.records.model import InspectionRecord
from edge.records.schema import DB_FILE, open_existing
from edge.robotlink.registers import alarm_word
from edge.runtime.messages import AlarmAck, AlarmState, FrameMeasures, LedgerEvent
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import Worker
from edge.runtime.workers.record_of import record_from_event
from edge.spc.ack import Acknowledgement
from edge.spc.alarm import Alarm
from edge.spc.drift import IMAGE_MEASURES, reference_measures
from edge.spc.picture import write_chart_picture
from edge.spc.replay import LineCharts
from edge.spc.restore import ChartRestore

log = logging.getLogger(__name__)

POLL_MS = 50
DRAIN_MAX = 1000  # messages handled per step, so the heartbeat is never starved
STATE_EVERY_S = 1.0  # the state is also re-sent this often: a restarted subscriber learns it within 1 s
LATEST_KEPT = 10


class AlarmsWorker(Worker):
    name = "alarms"

    def setup(self) -> None:
        cfg, ep = self.config, self.endpoints
        subscribed_at = time.time()
        self.inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, ep.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        self.frames: Receiver[FrameMeasures] = Receiver(
            self.zmq, ep.measures, FrameMeasures, bind=True, sub=True, hwm=10000
        )
        self.state_out: Sender[AlarmState] = Sender(
            self.zmq, ep.alarms, AlarmState, bind=True, pub=True, hwm=10
        )
        self.acks_in: Receiver[AlarmAck] = Receiver(self.zmq, ep.acks, AlarmAck, bind=True, hwm=100)
        self.poller = zmq.Poller()
        for receiver in (self.inspections, self.frames, self.acks_in):
            self.poller.register(receiver.socket, zmq.POLLIN)
        self.records_dir = Path(cfg.records.dir)
        self.charts = LineCharts(cfg.spc, self._reference())
        self.db: sqlite3.Connection | None = None
        self.raised: Counter[str] = Counter()
        self.latest: deque[dict[str, object]] = deque(maxlen=LATEST_KEPT)
        self.acks: deque[dict[str, object]] = deque(maxlen=LATEST_KEPT)
        counted = ("parts", "judged", "frames", "alarms", "acks", "store_errors", "picture_errors")
        self.counts = dict.fromkeys(counted, 0)
        self._sent: AlarmState | None = None
        self._sent_at = 0.0
        started = self.ctx.started_at
        self.restore: ChartRestore | None = (
            None if started is None else ChartRestore(self.charts, self.records_dir, started, subscribed_at)
        )

    def _reference(self) -> dict[str, float] | None:
        """The default recipe's calibration reference frame, as the centre of image drift (else the
        baseline's mean). A missing or changed reference is logged, never a reason not to run."""
        recipe = self.config.recipe(self.config.default_recipe)
        calibration = None if recipe is None else recipe.calibration
        if calibration is None:
            return None
        try:
            return reference_measures(Path(calibration))
        except (LinesideError, OSError, ValueError) as exc:
            log.info("image drift: no calibration reference (%s); centre from the first frames", exc)
            return None

    def step(self) -> None:
        restore = self.restore
        if restore is not None and not restore.done:
            # Nothing is published, and no part or acknowledgement is taken, until the charts are what they
            # were: a half-rebuilt state would flicker ALARM, an early acknowledgement miss a latch.
            if restore.step():
                self._restored(restore)
            self.detail = {**self.counts, "replayed": restore.parts, "rebuilding": not restore.done}
            return
        ready = dict(self.poller.poll(POLL_MS))
        found: list[Alarm] = []
        if self.frames.socket in ready:
            found += self._drain_frames()
        if self.inspections.socket in ready:
            found += self._drain_verdicts()
        elif restore is not None and not restore.joined:
            found += self._chart(restore.join((), time.monotonic()))  # the records are read on meanwhile
        if restore is not None:
            found += restore.missed()
        for alarm in found:
            self._raise(alarm)
        if self.acks_in.socket in ready:
            self._drain_acks()
        self._publish_state()
        self.detail = {**self.counts, "replayed": restore.parts if restore is not None else 0}

    def _restored(self, restore: ChartRestore) -> None:
        """The charts are rebuilt: the alarms of this start (for the page and metrics), and any alarm the
        replay raised that was never recorded (the shift came while this worker was down)."""
        for entry in restore.recorded:
            stored = entry.alarm
            self.counts["alarms"] += 1
            self.raised[f"{stored['chart']} {stored['rule']}"] += 1
            self.latest.append(self._latest_entry(stored, entry.raised_at, entry.chart_png))
        if restore.parts:
            log.info(
                "line alarms: charts rebuilt from %d records of this start (%d judged, %d alarms recorded), "
                "in alarm: %s",
                restore.parts,
                restore.judged,
                len(restore.recorded),
                ", ".join(self.charts.active()) or "none",
            )
        for alarm in restore.missed():
            self._raise(alarm)

    def _drain_frames(self) -> list[Alarm]:
        found: list[Alarm] = []
        for _ in range(DRAIN_MAX):
            got = self.frames.recv(0)
            if got is None:
                break
            m = got[0]
            self.counts["frames"] += 1
            found += self.charts.add_measures({k: getattr(m, k) for k in IMAGE_MEASURES}, (m.boot_id, m.seq))
        return found

    def _drain_verdicts(self) -> list[Alarm]:
        records = []
        for _ in range(DRAIN_MAX):
            got = self.inspections.recv(0)
            if got is None:
                break
            if got[0].kind == "finalised":
                records.append(record_from_event(got[0]))
        if self.restore is not None and not self.restore.joined:
            records = self.restore.join(records, time.monotonic())  # they may wait for the records
        return self._chart(records)

    def _chart(self, records: list[InspectionRecord]) -> list[Alarm]:
        """Live parts into the charts, each once: one replayed from its record already is skipped."""
        found: list[Alarm] = []
        for record in records:
            if self.restore is not None and record.key in self.restore.replayed:
                self.restore.replayed.discard(record.key)
                continue
            self.counts["parts"] += 1
            self.counts["judged"] += record.verdict is not Verdict.FAULT  # FAULTs are not charted
            found += self.charts.add_record(record)
        return found

    def _raise(self, alarm: Alarm) -> None:
        """An alarm's evidence (its chart picture), its record, its count; failures cost only those."""
        now = time.time()
        self.counts["alarms"] += 1
        self.raised[f"{alarm.chart} {alarm.rule}"] += 1
        log.warning("line alarm: %s", render(alarm.message()))
        picture = self._picture(alarm)
        data = alarm.to_json()
        try:
            insert_alarm(self._db(), data, now, self._boot_id(alarm), picture)
        except (sqlite3.Error, LinesideError) as exc:
            self.counts["store_errors"] += 1
            log.error("line alarm not stored in the records: %s", exc)
        self.latest.append(self._latest_entry(data, now, picture))

    @staticmethod
    def _latest_entry(data: dict[str, object], raised_at: float, picture: str | None) -> dict[str, object]:
        """An alarm as the state carries it. The state travels every second to the robot link too: the
        parts stay in the records (a run rule's pattern holds up to 1,200), the state says how many and the
        first and last."""
        summary = {k: v for k, v in data.items() if k != "parts"}
        parts = data.get("parts")
        keys = list(parts) if isinstance(parts, list | tuple) else []
        span = [f"{p[0]}:{p[1]}" for p in keys[:1] + keys[-1:]]
        return {**summary, "parts": len(keys), "span": span, "raised_at": raised_at, "chart_png": picture}

    def _db(self) -> sqlite3.Connection:
        if self.db is None:  # the recorder created (or upgraded) the database before this worker started
            self.db = open_existing(self.records_dir / DB_FILE, "rw")
        return self.db

    def _drain_acks(self) -> None:
        for _ in range(DRAIN_MAX):
            got = self.acks_in.recv(0)
            if got is None:
                break
            self._acknowledge(got[0])

    def _acknowledge(self, ack: AlarmAck) -> None:
        """Release the latched charts the acknowledgement names and record it (when, which charts, from
        where, by whom). A store failure is counted and logged: the charts are released all the same."""
        now = time.time()
        released = self.charts.acknowledge(ack.charts)
        who = ack.source + (f" ({ack.user})" if ack.user else "")
        entry = {"id": ack.id, "acked_at": now, "source": ack.source, "user": ack.user, "charts": released}
        self.acks.append(entry)  # the asker (page, CLI) sees it done in the state
        if not released:
            log.info("line alarms acknowledged by %s: nothing was in alarm", who)
            return
        self.counts["acks"] += 1
        log.warning("line alarms acknowledged by %s: %s released", who, ", ".join(released))
        record = Acknowledgement(now, ack.source, ack.user, tuple(released), self.charts.last_part)
        try:
            insert_ack(self._db(), record)
        except (sqlite3.Error, LinesideError) as exc:
            self.counts["store_errors"] += 1
            log.error("alarm acknowledgement not stored in the records: %s", exc)

    def _picture(self, alarm: Alarm) -> str | None:
        chart = self.charts.chart(alarm.chart)
        if chart is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.counts['alarms']:04d}-{alarm.chart}-{alarm.rule}")
        relative = f"{ALARMS_DIR}/{time.strftime('%Y-%m-%d')}/{int(time.time())}-{name}.png"
        try:
            station = self.config.station  # the picture's words in the station's language and names
            write_chart_picture(chart, alarm, self.records_dir / relative, station.language, station.names)
        except OSError as exc:
            self.counts["picture_errors"] += 1
            log.error("line alarm picture not written: %s", exc)
            return None
        return relative

    @staticmethod
    def _boot_id(alarm: Alarm) -> int:
        return alarm.parts[-1][0] if alarm.parts else 0

    def _publish_state(self) -> None:
        active = tuple(self.charts.active())
        p = self.config.spc.pchart
        learnt = p.subgroup * p.baseline_subgroups if p.baseline_rate is None else 0
        judged = self.counts["judged"] + (self.restore.judged if self.restore is not None else 0)
        state = AlarmState(
            word=alarm_word(active),
            active=active,
            raised=dict(self.raised),
            latest=tuple(self.latest),
            baseline_left=max(0, learnt - judged),
            acks=tuple(self.acks),
        )
        now = time.monotonic()
        if state != self._sent or now - self._sent_at >= STATE_EVERY_S:
            self.state_out.send(state)  # PUB: never blocks; a subscriber that is not there misses it
            self._sent, self._sent_at = state, now

    def teardown(self) -> None:
        for name in ("inspections", "frames", "state_out", "acks_in"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close()
        if getattr(self, "db", None) is not None:
            assert self.db is not None
            self.db.close()
