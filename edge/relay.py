"""The supervisor's relay of final inspections: from the robot link (PULL) to everyone else (PUB).

The public endpoint lives in the supervisor, not in the robot link, because a PUB socket's subscribers
reconnect after its process restarts and miss whatever it publishes before they are back (ZeroMQ's slow
joiner). The robot link PUSHes instead, which queues from `connect()` on, so a restarted robot link's
first parts reach every subscriber; messages are passed on as they came, without a decode.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from edge.endpoints import Endpoints
from edge.messages import LedgerEvent
from edge.transport import Receiver, Sender

BATCH = 1000  # at most this many per call, so the supervisor's loop always gets back to its watch


class InspectionRelay:
    """Binds `endpoints.events` (from the robot link) and `endpoints.publish` (to any subscriber)."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoints: Endpoints,
        on_finalised: Callable[[LedgerEvent], None] | None = None,
    ) -> None:
        self.inbox: Receiver[LedgerEvent] = Receiver(ctx, endpoints.events, LedgerEvent, hwm=10000)
        try:
            self.outbox: Sender[LedgerEvent] = Sender(
                ctx, endpoints.publish, LedgerEvent, bind=True, pub=True, hwm=10000
            )
        except Exception:
            self.inbox.close()
            raise
        self.on_finalised = on_finalised
        self.relayed = 0

    @property
    def socket(self) -> zmq.Socket[bytes]:
        """The socket to poll for inspections waiting to be relayed."""
        return self.inbox.socket

    def relay(self, timeout_ms: int = 0) -> int:
        """Pass on what is waiting (waiting up to `timeout_ms` for the first); the number relayed."""
        count = 0
        while count < BATCH and self.inbox.socket.poll(timeout_ms if count == 0 else 0, zmq.POLLIN):
            parts = self.inbox.socket.recv_multipart()
            self.outbox.forward(parts)
            count += 1
            if self.on_finalised is not None:
                event, _ = self.inbox.decode(parts)
                if event.kind == "finalised":
                    self.on_finalised(event)
        self.relayed += count
        return count

    def close(self, flush_ms: int = 0) -> None:
        self.inbox.close()
        self.outbox.close(flush_ms=flush_ms)
