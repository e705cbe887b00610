"""The fleet worker: forwards every final record to an MQTT broker (optional, `fleet.enabled`).

It only listens to the robot link's publish stream; a slow or absent broker costs the line nothing
(the stream drops for a subscriber that falls behind, and the MQTT queue is bounded).
"""

from __future__ import annotations

import logging
import time

from edge.fleet.publisher import FleetPublisher
from edge.runtime.messages import AlarmState, LedgerEvent
from edge.runtime.transport import Receiver
from edge.runtime.workers.base import Worker

log = logging.getLogger(__name__)

POLL_MS = 50
DRAIN_MAX = 1000
FINAL_DRAIN_S = 0.5  # at stop: records the robot link flushed as it stopped still go out


class FleetWorker(Worker):
    name = "fleet"

    def setup(self) -> None:
        self.inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, self.endpoints.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        self.alarms: Receiver[AlarmState] = Receiver(
            self.zmq, self.endpoints.alarms, AlarmState, bind=False, sub=True, hwm=10, conflate=True
        )
        self.publisher = FleetPublisher(self.config.fleet, self.config.station.name)
        self.publisher.start()
        self._alarms_sent: tuple[int, tuple[str, ...], int] | None = None

    def step(self) -> None:
        self._forward(POLL_MS)
        self._forward_alarms()
        self.state = "ready" if self.publisher.connected else "degraded"
        self.detail = {"connected": self.publisher.connected, **self.publisher.counts}

    def _forward(self, timeout_ms: int) -> int:
        got = self.inspections.recv(timeout_ms)
        received = 0
        while got is not None:
            received += 1
            if got[0].kind == "finalised":
                self.publisher.publish(got[0])
            if received >= DRAIN_MAX:
                break
            got = self.inspections.recv(0)
        return received

    def _forward_alarms(self) -> None:
        """The alarm state when it changed (or was not yet handed over while the broker was away)."""
        got = self.alarms.recv(0)
        if got is None:
            return
        state = got[0]
        key = (state.word, state.active, sum(state.raised.values()))
        if key != self._alarms_sent and self.publisher.connected and self.publisher.publish_alarms(state):
            self._alarms_sent = key

    def teardown(self) -> None:
        if not hasattr(self, "publisher"):
            return
        deadline = time.monotonic() + FINAL_DRAIN_S
        while time.monotonic() < deadline and self._forward(100):
            pass
        self.publisher.close()
        self.inspections.close()
        self.alarms.close()
