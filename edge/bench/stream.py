"""The appliance's stream of final inspections, read by the bench to count parts and split their time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import zmq

from edge.runtime.messages import LedgerEvent
from edge.runtime.transport import Receiver


@dataclass(frozen=True)
class Finalised:
    """A finalised part as published, with the monotonic time the bench received it."""

    event: LedgerEvent
    t_received: float


class InspectionStream:
    """A SUB socket on the appliance's `publish.endpoint`; only `finalised` events are kept."""

    def __init__(self, endpoint: str) -> None:
        self._zmq: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._receiver: Receiver[LedgerEvent] = Receiver(
            self._zmq, endpoint, LedgerEvent, bind=False, sub=True, hwm=100000
        )

    def receive(self, timeout_ms: int) -> Finalised | None:
        """The next finalised part, or None if none came within `timeout_ms`."""
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            left_ms = max(0, round((deadline - time.monotonic()) * 1000.0))
            got = self._receiver.recv(left_ms)
            if got is None:
                return None
            if got[0].kind == "finalised":
                return Finalised(got[0], time.monotonic())
            if left_ms == 0:
                return None

    def collect(self, until: float) -> list[Finalised]:
        """Every finalised part received until the monotonic time `until`."""
        found: list[Finalised] = []
        while (left := until - time.monotonic()) > 0:
            item = self.receive(max(1, round(left * 1000.0)))
            if item is not None:
                found.append(item)
        return found

    def drain(self, quiet_ms: int, limit_s: float = 10.0) -> list[Finalised]:
        """Every finalised part received until none came for `quiet_ms` (or `limit_s` passed)."""
        found: list[Finalised] = []
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and (item := self.receive(quiet_ms)) is not None:
            found.append(item)
        return found

    def close(self) -> None:
        self._receiver.close()
        self._zmq.term()
