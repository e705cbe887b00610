"""The AAS worker: serves the station's Asset Administration Shell read-only over HTTP (optional,
`aas.enabled`).

It only listens to the robot link's publish stream (the last result and the model in use) and reads
the records database (counters per shift); its HTTP server runs in a thread of this process, so no AAS
client is ever on the line's path. Like status and fleet it is given up, not a line fault, when it
keeps failing.
"""

from __future__ import annotations

import logging

from edge.aas.live import LiveShell
from edge.aas.server import AasServer, read_token
from edge.runtime.messages import LedgerEvent
from edge.runtime.transport import Receiver
from edge.runtime.workers.base import Worker

log = logging.getLogger(__name__)

POLL_MS = 50
DRAIN_MAX = 1000  # messages handled per step, so the heartbeat is never starved


class AasWorker(Worker):
    name = "aas"

    def setup(self) -> None:
        cfg = self.config.aas
        self.inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, self.endpoints.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        token = None if cfg.token_file is None else read_token(cfg.token_file)
        self.shell = LiveShell(self.config)
        self.server = AasServer(cfg.bind, cfg.port, self.shell, token)
        self.server.start()
        host, port = self.server.address
        self.url = f"http://{host}:{port}"
        self.events = 0
        log.info("AAS API at %s/shells (records at %s/records)", self.url, self.url)

    def step(self) -> None:
        event = self.inspections.recv(POLL_MS)
        handled = 0
        while event is not None:
            self.shell.observe(event[0])
            self.events += 1
            handled += 1
            if handled >= DRAIN_MAX:
                break
            event = self.inspections.recv(0)
        self.detail = {"url": self.url, "events": self.events}

    def teardown(self) -> None:
        if hasattr(self, "server"):
            self.server.close()
        receiver = getattr(self, "inspections", None)
        if receiver is not None:
            receiver.close()
