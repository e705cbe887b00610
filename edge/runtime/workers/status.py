"""The status worker: serves the local status page and Prometheus `/metrics` (optional, `status.enabled`).

It listens: final inspections from the robot link's publish stream, the supervisor's reports and the
alarms worker's state. Its one message out is an acknowledgement of the line alarms (the page's button,
`lineside alarms ack`) to the alarms worker, never to the line. Its HTTP server runs in a thread of this
process, so no browser or scraper is ever on the line's path.
"""

from __future__ import annotations

import logging

import zmq

from edge.runtime.messages import AlarmAck, AlarmState, LedgerEvent
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import Worker
from edge.status.acks import AckOutbox
from edge.status.auth import StatusGuard
from edge.status.frame import LastFrame
from edge.status.metrics import LineMetrics
from edge.status.server import StatusServer
from edge.status.state import StationState
from edge.status.supervision import SupervisionReport, supervision_endpoint

log = logging.getLogger(__name__)

POLL_MS = 50
DRAIN_MAX = 1000  # messages handled per step, so the heartbeat is never starved


class StatusWorker(Worker):
    name = "status"

    def setup(self) -> None:
        cfg, ep = self.config, self.endpoints
        self.inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, ep.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        self.reports: Receiver[SupervisionReport] = Receiver(
            self.zmq, supervision_endpoint(ep), SupervisionReport, bind=False, sub=True, hwm=10, conflate=True
        )
        self.alarms: Receiver[AlarmState] = Receiver(
            self.zmq, ep.alarms, AlarmState, bind=False, sub=True, hwm=10, conflate=True
        )
        self.poller = zmq.Poller()
        self.poller.register(self.inspections.socket, zmq.POLLIN)
        self.poller.register(self.reports.socket, zmq.POLLIN)
        self.poller.register(self.alarms.socket, zmq.POLLIN)
        quota_bytes = int(cfg.records.quota_mb * 1024 * 1024)
        self.station = StationState(cfg.station.name, cfg.status.history, quota_bytes)
        self.metrics = LineMetrics(self.station, cfg.records.dir)
        frame = LastFrame(cfg.records.dir, cfg.records.image_format, cfg.station.language, cfg.station.names)
        guard = StatusGuard.from_config(cfg.status)  # read at each start: a changed password file applies
        # Acknowledgements from the HTTP threads, sent from this loop; immediate: with the alarms worker
        # down a send fails now and the page says so, instead of queueing for a worker that may never come.
        self.outbox = AckOutbox()
        self.acks: Sender[AlarmAck] | None = (
            Sender(self.zmq, ep.acks, AlarmAck, hwm=10, immediate=True) if cfg.spc.enabled else None
        )
        self.server = StatusServer(
            cfg.status.bind,
            cfg.status.port,
            self.station,
            self.metrics,
            frame,
            guard=guard,
            language=cfg.station.language,
            names=cfg.station.names,
            outbox=self.outbox if self.acks is not None else None,
        )
        self.server.start()
        host, port = self.server.address
        self.url = f"http://{host}:{port}/"
        self.events = 0
        access = "open (127.0.0.1 only)" if guard is None else "login or bearer token required"
        log.info("status page at %s (metrics at %smetrics), %s", self.url, self.url, access)

    def step(self) -> None:
        ready = dict(self.poller.poll(POLL_MS))
        if self.reports.socket in ready:
            got = self.reports.recv(0)
            if got is not None:
                self.station.set_supervision(got[0])
        if self.alarms.socket in ready:
            alarms = self.alarms.recv(0)
            if alarms is not None:
                self.metrics.alarms.set(alarms[0])
        if self.inspections.socket in ready:
            for _ in range(DRAIN_MAX):
                event = self.inspections.recv(0)
                if event is None:
                    break
                self.station.add(event[0])
                self.metrics.observe(event[0])
                self.events += 1
        for ack in self.outbox.take():
            if self.acks is None or not self.acks.send(ack):
                self.metrics.alarms.undelivered(ack.id)
        self.detail = {"url": self.url, "events": self.events}

    def teardown(self) -> None:
        if hasattr(self, "server"):
            self.server.close()
        for name in ("inspections", "reports", "alarms", "acks"):
            receiver = getattr(self, name, None)
            if receiver is not None:
                receiver.close()
