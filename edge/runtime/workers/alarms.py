"""The alarms worker: line alarms (edge/spc, docs/spc.md) on the live line (optional, `spc.enabled`).

It listens to the robot link's final verdicts and to inference's image measures, feeds the charts part by
part, and for each alarm stores it in the records with its chart picture, then publishes the alarm state
(AlarmState) to the robot link (STATUS bit, ALARM register), the status page and the fleet feed. An
observer like the status page: no verdict waits for it or depends on it, and its failures are its own.
It writes only the `alarms` table, a row per alarm (a few a shift): SQLite's WAL serialises it with the
recorder's short transactions, and the database's busy timeout bounds the wait.
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
from edge.records.alarms import ALARMS_DIR, insert_alarm
from edge.records.schema import DB_FILE, open_existing
from edge.robotlink.registers import alarm_word
from edge.runtime.messages import AlarmState, FrameMeasures, LedgerEvent
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import Worker
from edge.runtime.workers.recorder import record_from_event
from edge.spc.alarm import Alarm
from edge.spc.drift import IMAGE_MEASURES, reference_measures
from edge.spc.picture import write_chart_picture
from edge.spc.replay import LineCharts

log = logging.getLogger(__name__)

POLL_MS = 50
DRAIN_MAX = 1000  # messages handled per step, so the heartbeat is never starved
STATE_EVERY_S = 1.0  # the state is also re-sent this often: a restarted subscriber learns it within 1 s
LATEST_KEPT = 10


class AlarmsWorker(Worker):
    name = "alarms"

    def setup(self) -> None:
        cfg, ep = self.config, self.endpoints
        self.inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, ep.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        self.frames: Receiver[FrameMeasures] = Receiver(
            self.zmq, ep.measures, FrameMeasures, bind=True, sub=True, hwm=10000
        )
        self.state_out: Sender[AlarmState] = Sender(
            self.zmq, ep.alarms, AlarmState, bind=True, pub=True, hwm=10
        )
        self.poller = zmq.Poller()
        self.poller.register(self.inspections.socket, zmq.POLLIN)
        self.poller.register(self.frames.socket, zmq.POLLIN)
        self.records_dir = Path(cfg.records.dir)
        self.charts = LineCharts(cfg.spc, self._reference())
        self.db: sqlite3.Connection | None = None
        self.raised: Counter[str] = Counter()
        self.latest: deque[dict[str, object]] = deque(maxlen=LATEST_KEPT)
        counted = ("parts", "judged", "frames", "alarms", "store_errors", "picture_errors")
        self.counts = dict.fromkeys(counted, 0)
        self._sent: AlarmState | None = None
        self._sent_at = 0.0

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
        ready = dict(self.poller.poll(POLL_MS))
        found: list[Alarm] = []
        if self.frames.socket in ready:
            found += self._drain_frames()
        if self.inspections.socket in ready:
            found += self._drain_verdicts()
        for alarm in found:
            self._raise(alarm)
        self._publish_state()
        self.detail = dict(self.counts)

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
        found: list[Alarm] = []
        for _ in range(DRAIN_MAX):
            got = self.inspections.recv(0)
            if got is None:
                break
            if got[0].kind == "finalised":
                record = record_from_event(got[0])
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
            if self.db is None:  # the recorder created (or upgraded) the database before this worker started
                self.db = open_existing(self.records_dir / DB_FILE, "rw")
            insert_alarm(self.db, data, now, self._boot_id(alarm), picture)
        except (sqlite3.Error, LinesideError) as exc:
            self.counts["store_errors"] += 1
            log.error("line alarm not stored in the records: %s", exc)
        # The state travels every second to the robot link too: the parts stay in the records (a run rule's
        # pattern holds up to 1,200), the state says how many and the first and last.
        summary = {k: v for k, v in data.items() if k != "parts"}
        parts = [f"{b}:{q}" for b, q in alarm.parts[:1] + alarm.parts[-1:]]
        self.latest.append(
            {**summary, "parts": len(alarm.parts), "span": parts, "raised_at": now, "chart_png": picture}
        )

    def _picture(self, alarm: Alarm) -> str | None:
        chart = self.charts.chart(alarm.chart)
        if chart is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.counts['alarms']:04d}-{alarm.chart}-{alarm.rule}")
        relative = f"{ALARMS_DIR}/{time.strftime('%Y-%m-%d')}/{int(time.time())}-{name}.png"
        try:
            write_chart_picture(chart, alarm, self.records_dir / relative)
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
        state = AlarmState(
            word=alarm_word(active),
            active=active,
            raised=dict(self.raised),
            latest=tuple(self.latest),
            baseline_left=max(0, learnt - self.counts["judged"]),
        )
        now = time.monotonic()
        if state != self._sent or now - self._sent_at >= STATE_EVERY_S:
            self.state_out.send(state)  # PUB: never blocks; a subscriber that is not there misses it
            self._sent, self._sent_at = state, now

    def teardown(self) -> None:
        for name in ("inspections", "frames", "state_out"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close()
        if getattr(self, "db", None) is not None:
            assert self.db is not None
            self.db.close()
