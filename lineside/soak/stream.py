"""The appliance's stream of final inspections (ZeroMQ SUB), kept in arrival order: a campaign joins
the robot's parts with it by (BOOT_ID, TRIGGER_SEQ), which repeat after 32767 parts, hence a list."""

from __future__ import annotations

import threading

import zmq

from edge.runtime.messages import LedgerEvent


class FinalStream:
    """Collects `finalised` events from `endpoint` in a thread until close(); survives publisher restarts
    (ZeroMQ reconnects), though events published while disconnected are missed."""

    def __init__(self, endpoint: str) -> None:
        self.events: list[LedgerEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 50)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.connect(endpoint)
        self._thread = threading.Thread(target=self._receive, name="campaign-stream", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(100):
                continue
            try:
                event = LedgerEvent.model_validate_json(self._sock.recv_multipart()[0])
            except ValueError:
                continue
            if event.kind == "finalised":
                with self._lock:
                    self.events.append(event)

    def snapshot(self) -> list[LedgerEvent]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close(0)
        self._ctx.term()
