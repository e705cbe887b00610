"""Role (a): lineside serves the register map over Modbus TCP (pymodbus 3.16 simulator datastore).

The lineside block is read-only to clients (a write gets exception 02) and copied from
`Handshake.snapshot()` on every read; robot writes go through `Handshake.on_robot_write` before they are
stored. An optional second listener serves the same registers entirely read-only to an HMI or SCADA.
Connections pass an allow-list, a limit and an idle timeout (security.py). Everything runs on the
caller's asyncio loop: no threads.
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
from edge.robotlink.security import ConnectionGuard, guarded_server, server_ssl_context
from edge.robotlink.ticker import TICK_PERIOD_S, run_ticks

log = logging.getLogger(__name__)

# Register function codes only: no coils or discrete inputs (in the shared block they would overlay
# registers). 6, 22 and 23 also read (pymodbus reads back after the write, or before a mask write).
_REGISTER_CODES = frozenset({3, 4, 6, 16, 22, 23})


class _Listener:
    """One bound pymodbus server and its asyncio listener."""

    def __init__(self, what: str, server: ModbusTcpServer, guard: ConnectionGuard) -> None:
        self.what = what
        self.server = server
        self.guard = guard
        self.listener: asyncio.Server | None = None

    async def start(self, host: str, port: int, field: str) -> None:
        try:
            await self.server.serve_forever(background=True)
        except RuntimeError:
            raise LinesideError(f"{field}: cannot listen on {host}:{port}") from None
        listener = self.server.transport
        if not isinstance(listener, asyncio.Server):  # a TCP listener is an asyncio.Server
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            raise LinesideError(f"{self.what}: unexpected pymodbus listener {type(listener).__name__}")
        self.listener = listener
        log.info("%s serving on %s:%d", self.what, host, self.port)

    @property
    def port(self) -> int:
        if self.listener is None or not self.listener.sockets:
            raise LinesideError(f"{self.what}: server is not listening")
        return int(self.listener.sockets[0].getsockname()[1])

    def stats(self) -> dict[str, int]:
        return {
            "connections": len(self.server.active_connections),
            "refused": self.guard.refused,
            "idle_closed": self.guard.idle_closed,
        }

    async def stop(self, timeout_s: float) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]  # closes the listener and all clients
        if self.listener is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.listener.wait_closed(), timeout_s)


class RobotLinkServer:
    """A Modbus TCP (or TLS) server bound to cfg.host:cfg.port that answers for `handshake`, and the
    optional read-only HMI listener (cfg.hmi).

    on_events receives every event the handshake returns (from robot writes and from ticks); it runs
    inside the Modbus request handling, so it must not block: queue or send without waiting.
    """

    def __init__(
        self, cfg: RobotLinkConfig, handshake: Handshake, on_events: Callable[[list[Event]], None]
    ) -> None:
        self._cfg = cfg
        self._handshake = handshake
        self._on_events = on_events
        self._main: _Listener | None = None
        self._hmi: _Listener | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (the OS's choice when cfg.port is 0)."""
        if self._main is None:
            raise LinesideError("robot link: server is not listening")
        return self._main.port

    @property
    def hmi_port(self) -> int:
        """The read-only HMI listener's bound port; LinesideError when there is none."""
        if self._hmi is None:
            raise LinesideError("robot link: the HMI listener is not running")
        return self._hmi.port

    def stats(self) -> dict[str, dict[str, int]]:
        """Connection counters per listener ("robot", "hmi"), for status pages."""
        listeners = {"robot": self._main, "hmi": self._hmi}
        return {name: lst.stats() for name, lst in listeners.items() if lst is not None}

    def device(self) -> SimDevice:
        """The register layout: lineside block read-only, robot block writable, nothing else mapped."""
        base = self._cfg.base
        lineside = SimData(base, values=[0] * reg.LINESIDE_COUNT, datatype=DataType.REGISTERS, readonly=True)
        robot = SimData(base + reg.ROBOT_FIRST, values=[0] * reg.ROBOT_COUNT, datatype=DataType.REGISTERS)
        warnings = SimData(
            base + reg.WARNINGS_FIRST,
            values=[0] * reg.WARNINGS_COUNT,
            datatype=DataType.REGISTERS,
            readonly=True,
        )
        return SimDevice(id=self._cfg.unit_id, simdata=[lineside, robot, warnings], action=self._action)

    def hmi_device(self) -> SimDevice:
        """The same layout with every register read-only: any write gets exception 02."""
        base = self._cfg.base
        image = SimData(base, values=[0] * reg.BLOCK_COUNT, datatype=DataType.REGISTERS, readonly=True)
        return SimDevice(id=self._cfg.unit_id, simdata=[image], action=self._hmi_action)

    async def start(self) -> None:
        """Bind and start serving in the background; raises LinesideError if an address cannot be bound."""
        if self._main is not None:
            raise LinesideError("robot link: server already started")
        cfg = self._cfg
        idle_s = cfg.idle_timeout_ms / 1000.0
        sslctx = server_ssl_context(cfg.tls) if cfg.tls is not None else None
        guard = ConnectionGuard("robot link", cfg.allow, cfg.max_connections, idle_s)
        main = _Listener(
            "robot link", guarded_server(self.device(), (cfg.host, cfg.port), guard, sslctx), guard
        )
        await main.start(cfg.host, cfg.port, "robot_link.host/port")
        self._main = main
        if cfg.hmi is None:
            return
        hmi_cfg = cfg.hmi
        hmi_guard = ConnectionGuard("robot link HMI", hmi_cfg.allow, hmi_cfg.max_connections, idle_s)
        server = guarded_server(self.hmi_device(), (hmi_cfg.host, hmi_cfg.port), hmi_guard, None)
        hmi = _Listener("robot link HMI (read-only)", server, hmi_guard)
        try:
            await hmi.start(hmi_cfg.host, hmi_cfg.port, "robot_link.hmi.host/port")
        except LinesideError:
            await self.stop()
            raise
        self._hmi = hmi

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Close the listeners and every client connection, waiting at most timeout_s for each."""
        listeners, self._main, self._hmi = (self._hmi, self._main), None, None
        for listener in listeners:
            if listener is not None:
                await listener.stop(timeout_s)

    async def run_ticks(self, stop: asyncio.Event, period_s: float = TICK_PERIOD_S) -> None:
        """Call Handshake.tick() every period_s until stop is set (heartbeat, budget, robot staleness)."""
        await run_ticks(self._handshake, self._on_events, stop, period_s)

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
            warnings = first + reg.WARNINGS_FIRST
            registers[warnings : warnings + reg.WARNINGS_COUNT] = self._handshake.warnings()
            return None
        try:
            events = self._handshake.on_robot_write(address - self._cfg.base, [int(v) for v in set_values])
        except LinesideError as exc:
            log.warning("%s", exc)
            return ExcCodes.ILLEGAL_ADDRESS
        if events:
            self._on_events(events)
        return None

    async def _hmi_action(  # noqa: PLR0917 (the signature is pymodbus's SimAction)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Reads get the lineside snapshot and the robot block as last written; nothing is ever written."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS  # pymodbus's read-only check already refused it; never store
        if function_code not in _REGISTER_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        first = self._cfg.base - start_address
        registers[first : first + reg.LINESIDE_COUNT] = self._handshake.snapshot()
        robot_first = first + reg.ROBOT_FIRST
        registers[robot_first : robot_first + reg.ROBOT_COUNT] = self._handshake.robot_registers()
        warnings = first + reg.WARNINGS_FIRST
        registers[warnings : warnings + reg.WARNINGS_COUNT] = self._handshake.warnings()
        return None
