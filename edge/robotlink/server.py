"""Role (a): lineside serves the register map over Modbus TCP (pymodbus 3.16 simulator datastore).

The lineside block is read-only to clients (a write gets exception 02) and copied from
`Handshake.snapshot()` on every read; robot writes go through `Handshake.on_robot_write` before they are
stored. Everything runs on the caller's asyncio loop: no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.errors import LinesideError
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event
from edge.robotlink.handshake import Handshake

log = logging.getLogger(__name__)

# Register function codes only: no coils or discrete inputs (in the shared block they would overlay
# registers). 6, 22 and 23 also read (pymodbus reads back after the write, or before a mask write).
_REGISTER_CODES = frozenset({3, 4, 6, 16, 22, 23})
TICK_PERIOD_S = 0.01


class RobotLinkServer:
    """A Modbus TCP server bound to cfg.host:cfg.port that answers for `handshake`.

    on_events receives every event the handshake returns (from robot writes and from ticks); it runs
    inside the Modbus request handling, so it must not block: queue or send without waiting.
    """

    def __init__(
        self, cfg: RobotLinkConfig, handshake: Handshake, on_events: Callable[[list[Event]], None]
    ) -> None:
        self._cfg = cfg
        self._handshake = handshake
        self._on_events = on_events
        self._server: ModbusTcpServer | None = None
        self._listener: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (the OS's choice when cfg.port is 0)."""
        if self._listener is None or not self._listener.sockets:
            raise LinesideError("robot link: server is not listening")
        return int(self._listener.sockets[0].getsockname()[1])

    def device(self) -> SimDevice:
        """The register layout: lineside block read-only, robot block writable, nothing else mapped."""
        base = self._cfg.base
        lineside = SimData(base, values=[0] * reg.LINESIDE_COUNT, datatype=DataType.REGISTERS, readonly=True)
        robot = SimData(base + reg.ROBOT_FIRST, values=[0] * reg.ROBOT_COUNT, datatype=DataType.REGISTERS)
        return SimDevice(id=self._cfg.unit_id, simdata=[lineside, robot], action=self._action)

    async def start(self) -> None:
        """Bind and start serving in the background; raises LinesideError if the address cannot be bound."""
        if self._server is not None:
            raise LinesideError("robot link: server already started")
        server = ModbusTcpServer(self.device(), address=(self._cfg.host, self._cfg.port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            raise LinesideError(
                f"robot_link.host/port: cannot listen on {self._cfg.host}:{self._cfg.port}"
            ) from None
        listener = server.transport
        if not isinstance(listener, asyncio.Server):  # a TCP listener is an asyncio.Server
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise LinesideError(f"robot link: unexpected pymodbus listener {type(listener).__name__}")
        self._server, self._listener = server, listener
        log.info("robot link serving Modbus TCP on %s:%d", self._cfg.host, self.port)

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Close the listener and every client connection, waiting at most timeout_s."""
        server, listener = self._server, self._listener
        self._server = self._listener = None
        if server is None:
            return
        await server.shutdown()  # type: ignore[no-untyped-call]  # closes the listener and all clients
        if listener is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(listener.wait_closed(), timeout_s)

    async def run_ticks(self, stop: asyncio.Event, period_s: float = TICK_PERIOD_S) -> None:
        """Call Handshake.tick() every period_s until stop is set (heartbeat, budget, robot staleness)."""
        while not stop.is_set():
            events = self._handshake.tick()
            if events:
                self._on_events(events)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), period_s)

    async def _action(  # noqa: PLR0917 (the signature is pymodbus's SimAction)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this for every access after its address and read-only checks.

        Reads: copy a consistent snapshot into the image. Writes (only the robot block gets here): let the
        handshake act before pymodbus stores the values, so no later read can see a stale result.
        """
        if function_code not in _REGISTER_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is None:
            first = self._cfg.base - start_address
            registers[first : first + reg.LINESIDE_COUNT] = self._handshake.snapshot()
            return None
        try:
            events = self._handshake.on_robot_write(address - self._cfg.base, [int(v) for v in set_values])
        except LinesideError as exc:
            log.warning("%s", exc)
            return ExcCodes.ILLEGAL_ADDRESS
        if events:
            self._on_events(events)
        return None
