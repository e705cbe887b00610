"""Line alarms on the status worker: Prometheus series from the alarms worker's latest state (AlarmState)
and the page's alarms panel rows. Read at scrape or poll time; nothing here waits for the alarms worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.runtime.messages import AlarmState

STALE_S = 5.0  # the alarms worker re-sends every second: an older state is no longer known to hold
UNDELIVERED_KEPT = 100


class AlarmBoard:
    """The newest AlarmState, shared between the worker loop and the HTTP threads; an HTTP thread that sent
    an acknowledgement waits here to see it handled (`wait_for_ack`)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._state: AlarmState | None = None
        self._at = 0.0
        self._undelivered: set[str] = set()

    def set(self, state: AlarmState) -> None:
        with self._lock:
            self._state, self._at = state, time.monotonic()
            self._lock.notify_all()

    def undelivered(self, ack_id: str) -> None:
        """The worker could not hand acknowledgement `ack_id` to the alarms worker (not running)."""
        with self._lock:
            if len(self._undelivered) >= UNDELIVERED_KEPT:  # nobody waited for those: forget them
                self._undelivered.clear()
            self._undelivered.add(ack_id)
            self._lock.notify_all()

    def wait_for_ack(self, ack_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The alarms worker's record of acknowledgement `ack_id` (its `charts` released, possibly none),
        {"undelivered": True} when it could not be sent, or None when neither came within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                if ack_id in self._undelivered:
                    self._undelivered.discard(ack_id)
                    return {"undelivered": True}
                for ack in self._state.acks if self._state is not None else ():
                    if ack.get("id") == ack_id:
                        return dict(ack)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def get(self) -> tuple[AlarmState | None, bool]:
        """The newest state and whether it is current (the alarms worker spoke within STALE_S)."""
        with self._lock:
            return self._state, self._state is not None and time.monotonic() - self._at <= STALE_S

    def panel(self) -> dict[str, Any]:
        """The page's alarms panel: the charts in alarm now and the newest alarms (newest first)."""
        state, current = self.get()
        if state is None:
            return {"known": False, "word": 0, "active": [], "latest": [], "baseline_left": None, "acks": []}
        return {
            "known": current,
            "word": state.word if current else 0,
            "active": list(state.active) if current else [],
            "latest": list(reversed(state.latest)),
            "baseline_left": state.baseline_left,
            "acks": list(reversed(state.acks)),
        }


class AlarmsCollector(Collector):
    """`lineside_alarms_raised{chart,rule}` (since the alarms worker started), `lineside_alarm_active{chart}`
    (1 while latched) and `lineside_alarm_word` (the robot's ALARM register)."""

    def __init__(self, board: AlarmBoard) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        state, current = self.board.get()
        raised = CounterMetricFamily(
            "lineside_alarms_raised", "Line alarms raised, by chart and rule.", labels=["chart", "rule"]
        )
        active = GaugeMetricFamily(
            "lineside_alarm_active", "1 while a chart is in alarm (latched).", labels=["chart"]
        )
        word = GaugeMetricFamily("lineside_alarm_word", "The robot's ALARM register (a bit per chart kind).")
        if state is not None:
            for key, count in state.raised.items():
                chart, _, rule = key.partition(" ")
                raised.add_metric([chart, rule], count)
            for chart in state.active if current else ():
                active.add_metric([chart], 1.0)
        word.add_metric([], float(state.word if state is not None and current else 0))
        yield from (raised, active, word)
