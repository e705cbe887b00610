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


class AlarmBoard:
    """The newest AlarmState, shared between the worker loop and the HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: AlarmState | None = None
        self._at = 0.0

    def set(self, state: AlarmState) -> None:
        with self._lock:
            self._state, self._at = state, time.monotonic()

    def get(self) -> tuple[AlarmState | None, bool]:
        """The newest state and whether it is current (the alarms worker spoke within STALE_S)."""
        with self._lock:
            return self._state, self._state is not None and time.monotonic() - self._at <= STALE_S

    def panel(self) -> dict[str, Any]:
        """The page's alarms panel: the charts in alarm now and the newest alarms (newest first)."""
        state, current = self.get()
        if state is None:
            return {"known": False, "word": 0, "active": [], "latest": [], "baseline_left": None}
        return {
            "known": current,
            "word": state.word if current else 0,
            "active": list(state.active) if current else [],
            "latest": list(reversed(state.latest)),
            "baseline_left": state.baseline_left,
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
