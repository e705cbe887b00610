"""The opcua worker: the station on OPC UA Machine Vision (optional, `opcua.enabled`).

It only listens: final inspections from the robot link's publish stream and the supervisor's reports.
The OPC UA server runs in a thread of this process (edge/opcua/server.py) behind a bounded queue, so
no client is ever on the line's path; a server that fails crashes this worker, which the supervisor
restarts and, if it keeps failing, gives up without faulting the line.
"""

from __future__ import annotations

import logging
import time

import zmq

from edge.opcua.results import part_result
from edge.opcua.server import StateUpdate, VisionServer
from edge.opcua.state import VisionState, vision_state
from edge.runtime.messages import LedgerEvent
from edge.runtime.transport import Receiver
from edge.runtime.workers.base import Worker
from edge.status.supervision import SupervisionReport, supervision_endpoint

log = logging.getLogger(__name__)

POLL_MS = 50
DRAIN_MAX = 1000  # messages handled per step, so the heartbeat is never starved
FINAL_DRAIN_S = 0.5  # at stop: the parts the robot link finalised as it stopped still go out
SERVER_STOP_S = 3.0


class OpcUaWorker(Worker):
    name = "opcua"

    def setup(self) -> None:
        # asyncua logs every node it imports or copies at INFO and a harmless warning per instantiated
        # result: keep this process's log to what an operator needs.
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        self.inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, self.endpoints.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        self.reports: Receiver[SupervisionReport] = Receiver(
            self.zmq,
            supervision_endpoint(self.endpoints),
            SupervisionReport,
            bind=False,
            sub=True,
            hwm=10,
            conflate=True,
        )
        self.poller = zmq.Poller()
        self.poller.register(self.inspections.socket, zmq.POLLIN)
        self.poller.register(self.reports.socket, zmq.POLLIN)
        self.report: SupervisionReport | None = None
        self.report_at = 0.0
        self.shown: VisionState | None = None
        self.server = VisionServer(self.config)
        self.server.start()  # serving takes a second or two (the NodeSet import): heartbeats go on

    def step(self) -> None:
        if self.server.failed:
            raise RuntimeError(f"OPC UA server failed: {self.server.error}")
        ready = dict(self.poller.poll(POLL_MS))
        if self.reports.socket in ready:
            got = self.reports.recv(0)
            if got is not None:
                self.report, self.report_at = got[0], time.monotonic()
        if self.inspections.socket in ready:
            self._forward(0)
        self._show(stopping=False)
        if not self.server.serving.is_set():
            self.state = "starting"  # the supervisor's start grace covers the NodeSet import
        else:
            self.state = "ready" if self.server.dropped == 0 else "degraded"
        self.detail = {
            "endpoint": self.config.opcua.endpoint_url(),
            "serving": self.server.serving.is_set(),
            "vision_state": self.shown.value if self.shown else None,
            **self.server.counts(),
        }

    def _forward(self, timeout_ms: int) -> int:
        got = self.inspections.recv(timeout_ms)
        received = 0
        while got is not None:
            received += 1
            if got[0].kind == "finalised":
                self.server.offer(part_result(got[0]))
            if received >= DRAIN_MAX:
                break
            got = self.inspections.recv(0)
        return received

    def _show(self, stopping: bool) -> None:
        age = time.monotonic() - self.report_at if self.report is not None else float("inf")
        state = vision_state(self.report, age, stopping)
        if state is not self.shown:
            self.shown = state
            self.server.offer(StateUpdate(state))

    def teardown(self) -> None:
        if not hasattr(self, "server"):
            return
        deadline = time.monotonic() + FINAL_DRAIN_S
        while time.monotonic() < deadline and self._forward(100):
            pass
        latest = self.reports.recv(0)
        if latest is not None:  # the supervisor's last word: a FAULT stop shows as Error, not Halted
            self.report, self.report_at = latest[0], time.monotonic()
        self._show(stopping=True)
        self.server.close(SERVER_STOP_S)
        self.inspections.close()
        self.reports.close()
