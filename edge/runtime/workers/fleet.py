"""The fleet worker: forwards every final record to an MQTT broker (optional, `fleet.enabled`).

It only listens to the robot link's publish stream; a slow or absent broker costs the line nothing
(the stream drops for a subscriber that falls behind, and the MQTT queue is bounded).
"""

from __future__ import annotations

import logging
import time

from edge.fleet.publisher import FleetPublisher
from edge.runtime.messages import LedgerEvent
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
        self.publisher = FleetPublisher(self.config.fleet, self.config.station.name)
        self.publisher.start()

    def step(self) -> None:
        self._forward(POLL_MS)
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

    def teardown(self) -> None:
        if not hasattr(self, "publisher"):
            return
        deadline = time.monotonic() + FINAL_DRAIN_S
        while time.monotonic() < deadline and self._forward(100):
            pass
        self.publisher.close()
        self.inspections.close()
