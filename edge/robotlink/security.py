"""Who may talk to the robot link: an IP allow-list, a connection limit, an idle timeout and TCP keepalive
for pymodbus servers, Modbus/TCP Security (TLS, optionally mutual) and the read-only HMI listener's config.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FilePath, model_validator
from pymodbus.server import ModbusTcpServer, ModbusTlsServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimDevice
from pymodbus.transport import ModbusProtocol

from edge.errors import LinesideError

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REFUSAL_LOG_PERIOD_S = 30.0  # one log line per refused peer per period; the rest are counted
_REFUSAL_LOG_PEERS = 1024  # bound on the peers the rate limiter remembers
# Dead peers (a robot unplugged mid-connection) are found in about 10 + 3 x 5 s instead of hours.
_KEEPALIVE_IDLE_S, _KEEPALIVE_INTERVAL_S, _KEEPALIVE_COUNT = 10, 5, 3


def _check_network(entry: str) -> str:
    ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the bad entry
    return entry.strip()


AllowEntry = Annotated[str, AfterValidator(_check_network)]
"""A client IP (192.168.10.5) or network (192.168.10.0/24, fd00::/64), validated when the config loads."""


class TlsConfig(BaseModel):
    """Modbus/TCP Security: the listener speaks TLS (1.2 or later) with this certificate."""

    model_config = ConfigDict(extra="forbid")

    cert: FilePath = Field(..., description="PEM server certificate (chain) presented to clients.")
    key: FilePath = Field(..., description="PEM private key of the server certificate.")
    ca: FilePath | None = Field(
        None, description="PEM CA bundle that client certificates must chain to; None: no client certs."
    )
    require_client_cert: bool = Field(
        True, description="Mutual TLS: refuse a client without a certificate signed by `ca`."
    )

    @model_validator(mode="after")
    def _check_ca(self) -> TlsConfig:
        if self.require_client_cert and self.ca is None:
            raise ValueError("tls.require_client_cert needs tls.ca to verify client certificates")
        return self


class HmiConfig(BaseModel):
    """A second, entirely read-only listener serving the same registers to an HMI or SCADA system."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="Address to bind: the plant-network side.")
    port: int = Field(5021, ge=0, le=65535, description="TCP port; 0: the OS picks (tests).")
    allow: list[AllowEntry] = Field(
        default_factory=list, description="Client IPs/networks allowed to connect; empty: any."
    )
    max_connections: int = Field(4, ge=1, le=256, description="Connections beyond this are refused.")


def parse_networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """The allow-list as networks; a bare address is a /32 (or /128)."""
    networks = []
    for i, entry in enumerate(entries):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise LinesideError(f"robot_link.allow[{i}]: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """A TLS >= 1.2 server context; with tls.ca it asks for (and if required, demands) a client cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise LinesideError(f"robot_link.tls.cert/key: cannot load {tls.cert} / {tls.key}: {exc}") from None
    if tls.ca is not None:
        try:
            ctx.load_verify_locations(cafile=tls.ca)
        except (OSError, ssl.SSLError) as exc:
            raise LinesideError(f"robot_link.tls.ca: cannot load {tls.ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def _peer_ip(peer: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None
    try:
        ip = ipaddress.ip_address(peer[0].split("%", 1)[0])  # drop an IPv6 scope id
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
    return ip


class ConnectionGuard:
    """Admission rules and counters for one listener: allow-list, connection limit, idle timeout."""

    def __init__(
        self,
        name: str,
        allow: Sequence[str],
        max_connections: int,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.networks = parse_networks(allow)
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.refused = 0  # connections refused (not allowed, or over the limit)
        self.idle_closed = 0  # connections closed by the idle timeout
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allowed(self, peer: Any) -> bool:
        """Whether a peer address (as asyncio's peername) is on the allow-list; an empty list allows all."""
        if not self.networks:
            return True
        ip = _peer_ip(peer)
        return ip is not None and any(ip.version == n.version and ip in n for n in self.networks)

    def refusal(self, peer: Any, open_connections: int) -> str | None:
        """Why a new connection from `peer` must be refused, given the connections already open; or None."""
        if not self.allowed(peer):
            return "not on the allow-list"
        if open_connections >= self.max_connections:
            return f"{open_connections} connections open, the limit is {self.max_connections}"
        return None

    def note_refused(self, peer: Any, why: str) -> None:
        """Count a refusal; log it at most once per peer per REFUSAL_LOG_PERIOD_S (a scan must not flood)."""
        self.refused += 1
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown peer"
        now = self._clock()
        last = self._last_logged.get(host)
        if last is not None and now - last < REFUSAL_LOG_PERIOD_S:
            self._suppressed[host] = self._suppressed.get(host, 0) + 1
            return
        if len(self._last_logged) >= _REFUSAL_LOG_PEERS:
            self._last_logged.clear()
            self._suppressed.clear()
        more = self._suppressed.pop(host, 0)
        since = f" ({more} more refused since the last report)" if more else ""
        log.warning("%s: refused connection from %s: %s%s", self.name, host, why, since)
        self._last_logged[host] = now


def _enable_keepalive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (
            ("TCP_KEEPIDLE", _KEEPALIVE_IDLE_S),
            ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL_S),
            ("TCP_KEEPCNT", _KEEPALIVE_COUNT),
        ):
            if hasattr(socket, option):  # Linux; other systems keep their defaults
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    except OSError as exc:
        log.debug("keepalive not enabled: %s", exc)


def _abort(transport: asyncio.BaseTransport) -> None:
    """Drop a connection at once (no graceful close: nothing more is sent to this peer)."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


class GuardedRequestHandler(ServerRequestHandler):
    """pymodbus's per-connection handler, admitted by a ConnectionGuard before it serves anything.

    It is entered in the server's connection table only once admitted: a TLS handshake that fails never
    reaches connection_made, and must not hold a slot of the connection limit forever.
    """

    def __init__(self, owner: ModbusTcpServer, guard: ConnectionGuard) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)  # type: ignore[no-untyped-call]
        self._guard = guard
        self._last_rx = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner: ModbusProtocol = self.server
        peer = transport.get_extra_info("peername")
        why = self._guard.refusal(peer, len(owner.active_connections))
        if why is not None:
            self._guard.note_refused(peer, why)
            self.is_closing = True  # the connection_lost that follows the abort is then a no-op
            _abort(transport)
            return
        owner.active_connections[self.unique_id] = self
        self.listener = owner
        _enable_keepalive(transport)
        super().connection_made(transport)
        self._last_rx = self.loop.time()
        self._arm_idle_timer(self._guard.idle_timeout_s)

    def data_received(self, data: bytes) -> None:
        self._last_rx = self.loop.time()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super().connection_lost(exc)

    def _arm_idle_timer(self, delay_s: float) -> None:
        if self._guard.idle_timeout_s > 0:
            self._idle_timer = self.loop.call_later(delay_s, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self.transport is None or self.is_closing:
            return
        idle_s = self.loop.time() - self._last_rx
        if idle_s < self._guard.idle_timeout_s:
            self._arm_idle_timer(self._guard.idle_timeout_s - idle_s)
            return
        self._guard.idle_closed += 1
        peer = self.transport.get_extra_info("peername")
        log.info("%s: closing connection from %s: idle for %.1f s", self._guard.name, peer, idle_s)
        _abort(self.transport)  # asyncio then calls connection_lost, which unregisters it


class GuardedTcpServer(ModbusTcpServer):
    """ModbusTcpServer whose connections pass a ConnectionGuard."""

    def __init__(self, device: SimDevice, address: tuple[str, int], guard: ConnectionGuard) -> None:
        super().__init__(device, address=address)
        self.guard = guard

    def handle_new_connection(self) -> ModbusProtocol:
        return GuardedRequestHandler(self, self.guard)


class GuardedTlsServer(ModbusTlsServer):
    """ModbusTlsServer (Modbus/TCP Security) whose connections pass a ConnectionGuard after the handshake."""

    def __init__(
        self, device: SimDevice, address: tuple[str, int], guard: ConnectionGuard, sslctx: ssl.SSLContext
    ) -> None:
        super().__init__(device, address=address, sslctx=sslctx)
        self.guard = guard

    def handle_new_connection(self) -> ModbusProtocol:
        return GuardedRequestHandler(self, self.guard)


def guarded_server(
    device: SimDevice, address: tuple[str, int], guard: ConnectionGuard, sslctx: ssl.SSLContext | None
) -> ModbusTcpServer:
    """A plain or TLS pymodbus server for `device` whose connections pass `guard`."""
    if sslctx is None:
        return GuardedTcpServer(device, address, guard)
    return GuardedTlsServer(device, address, guard, sslctx)
