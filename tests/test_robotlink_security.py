"""Robot link access control on real loopback sockets: allow-list, connection limit, idle timeout,
keepalive, the read-only HMI listener and Modbus/TCP Security (TLS, mutual TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pymodbus.client import AsyncModbusTcpClient, AsyncModbusTlsClient
from pymodbus.exceptions import ModbusException
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.errors import LinesideError
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.handshake import Handshake
from edge.robotlink.security import ConnectionGuard, GuardedTcpServer, HmiConfig, TlsConfig
from edge.robotlink.server import RobotLinkServer

READ_ONE = bytes.fromhex("000100000006010300000001")  # MBAP tid 1, unit 1, FC3 address 0 count 1


def run(coro: Awaitable[Any]) -> Any:
    """Run one test body on a fresh loop, bounded so a hang fails instead of stalling the suite."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


class FixedClock:
    """A clock that moves only when told, so the register image is stable between two reads."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[tuple[RobotLinkServer, Handshake]]:
    cfg = RobotLinkConfig(port=0, **overrides)
    handshake = Handshake(cfg, FixedClock(), boot_id=1234)
    server = RobotLinkServer(cfg, handshake, lambda events: None)
    await server.start()
    try:
        yield server, handshake
    finally:
        await server.stop()


async def answers(port: int, source: str | None = None) -> bool:
    """Whether a raw connection (optionally from `source`) gets a reply to one read, or is dropped."""
    local = (source, 0) if source else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    try:
        writer.write(READ_ONE)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(256), 2.0)
    except (ConnectionError, OSError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return len(reply) > 0


async def read_or_none(client: AsyncModbusTcpClient, count: int = reg.LINESIDE_COUNT) -> list[int] | None:
    """The registers read, or None when the connection or the request failed."""
    try:
        if not client.connected and not await client.connect():
            return None
        rr = await client.read_holding_registers(0, count=count, device_id=1)
    except ModbusException:
        return None
    return None if rr.isError() else list(rr.registers)


async def wait_until(condition: Any, timeout_s: float = 2.0) -> bool:
    """Poll `condition()` every 20 ms for at most timeout_s."""
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return bool(condition())


# ---- allow-list, limit, idle timeout -------------------------------------------------------------------


def test_peer_not_on_the_allow_list_is_refused_and_an_allowed_peer_is_served() -> None:
    async def body() -> None:
        async with serving(allow=["127.0.0.2"]) as (server, _):
            assert not await answers(server.port)  # from 127.0.0.1
            assert await answers(server.port, source="127.0.0.2")
            assert server.stats()["robot"]["refused"] == 1

    run(body())


def test_allow_list_accepts_a_network() -> None:
    async def body() -> None:
        async with serving(allow=["10.0.0.0/8", "127.0.0.0/30"]) as (server, _):
            assert await answers(server.port, source="127.0.0.2")
            assert not await answers(server.port, source="127.0.0.5")

    run(body())


def test_connections_beyond_the_limit_are_refused_until_one_closes() -> None:
    async def body() -> None:
        async with serving(max_connections=2) as (server, _):
            clients = [
                AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, retries=0) for _ in "ab"
            ]
            try:
                for client in clients:
                    assert await read_or_none(client) is not None
                assert not await answers(server.port)
                assert server.stats()["robot"] == {"connections": 2, "refused": 1, "idle_closed": 0}
                clients[0].close()
                assert await wait_until(lambda: server.stats()["robot"]["connections"] == 1)
                assert await answers(server.port)
            finally:
                for client in clients:
                    client.close()

    run(body())


def test_idle_connection_is_closed_and_a_polling_one_is_kept() -> None:
    async def body() -> None:
        async with serving(idle_timeout_ms=300) as (server, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            poller = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, retries=0)
            try:
                writer.write(READ_ONE)
                assert await asyncio.wait_for(reader.read(256), 2.0)
                for _ in range(10):  # 1 s of polling every 100 ms, well past the idle timeout
                    assert await read_or_none(poller) is not None
                    await asyncio.sleep(0.1)
                assert await asyncio.wait_for(reader.read(256), 2.0) == b""  # the idle one was closed
                assert server.stats()["robot"]["idle_closed"] == 1
                assert poller.connected
            finally:
                poller.close()
                writer.close()

    run(body())


def test_served_connections_have_tcp_keepalive() -> None:
    async def body() -> None:
        guard = ConnectionGuard("test", [], max_connections=4, idle_timeout_s=0)
        device = SimDevice(id=0, simdata=[SimData(0, values=[7] * 4, datatype=DataType.REGISTERS)])
        server = GuardedTcpServer(device, ("127.0.0.1", 0), guard)
        await server.serve_forever(background=True)
        assert isinstance(server.transport, asyncio.Server)
        port = server.transport.sockets[0].getsockname()[1]
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
        try:
            assert await read_or_none(client, count=4) == [7] * 4
            (handler,) = server.active_connections.values()
            sock = handler.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        finally:
            client.close()
            await server.shutdown()

    run(body())


def test_refusals_are_logged_once_per_period_and_all_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = FixedClock()
    guard = ConnectionGuard("robot link", ["127.0.0.2"], max_connections=4, idle_timeout_s=0, clock=clock)
    peer = ("127.0.0.1", 40000)
    with caplog.at_level(logging.WARNING, logger="edge.robotlink.security"):
        for _ in range(3):
            guard.note_refused(peer, guard.refusal(peer, 0) or "")
        clock.now += 31.0
        guard.note_refused(peer, "not on the allow-list")
    lines = [r.getMessage() for r in caplog.records]
    assert guard.refused == 4
    assert len(lines) == 2
    assert "127.0.0.1" in lines[0] and "not on the allow-list" in lines[0]
    assert "2 more refused" in lines[1]


def test_ipv4_mapped_peer_is_matched_against_ipv4_allow_entries() -> None:
    guard = ConnectionGuard("robot link", ["192.168.10.0/24"], max_connections=4, idle_timeout_s=0)
    assert guard.allowed(("::ffff:192.168.10.7", 502, 0, 0))
    assert not guard.allowed(("::ffff:192.168.11.7", 502, 0, 0))
    assert not guard.allowed(None)


def test_a_bad_allow_entry_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="allow"):
        RobotLinkConfig(allow=["192.168.10.300"])


# ---- read-only HMI listener ----------------------------------------------------------------------------


@dataclass
class Clients:
    robot: AsyncModbusTcpClient
    hmi: AsyncModbusTcpClient


@contextlib.asynccontextmanager
async def robot_and_hmi(server: RobotLinkServer) -> AsyncIterator[Clients]:
    robot = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1.0, retries=0)
    hmi = AsyncModbusTcpClient("127.0.0.1", port=server.hmi_port, timeout=1.0, retries=0)
    try:
        assert await robot.connect() and await hmi.connect()
        yield Clients(robot, hmi)
    finally:
        robot.close()
        hmi.close()


def test_hmi_listener_serves_the_same_registers_as_the_robot_link() -> None:
    async def body() -> None:
        async with serving(hmi=HmiConfig(port=0)) as (server, handshake), robot_and_hmi(server) as c:
            handshake.set_ready(model_ready=True, camera_ready=True)
            handshake.alarm_word = int(reg.AlarmBit.BRIGHTNESS)  # a line alarm in force (the worker sets it)
            robot_block = [0, 0, 7, 4321, int(reg.ControlBit.ENABLE), 3]
            assert not (await c.robot.write_registers(reg.TRIGGER_SEQ, robot_block, device_id=1)).isError()
            main = await c.robot.read_holding_registers(0, count=reg.BLOCK_COUNT, device_id=1)
            hmi = await c.hmi.read_holding_registers(0, count=reg.BLOCK_COUNT, device_id=1)
            assert not main.isError() and not hmi.isError()
            assert hmi.registers == main.registers
            assert hmi.registers[reg.BOOT_ID] == 1234
            assert hmi.registers[reg.ROBOT_FIRST : reg.ROBOT_FIRST + reg.ROBOT_COUNT] == robot_block
            assert hmi.registers[reg.ALARM] == reg.AlarmBit.BRIGHTNESS
            assert hmi.registers[reg.STATUS] & reg.StatusBit.ALARM_WARNING

    run(body())


@pytest.mark.parametrize(
    ("what", "address", "values"),
    [
        ("lineside block, FC16", reg.RESULT_WORD, [reg.result_word(reg.VerdictCode.ACCEPT, 1)]),
        ("robot block, FC16", reg.TRIGGER_SEQ, [1, 0, 5]),
        ("trigger, FC6", reg.TRIGGER_SEQ, [1]),
        ("alarm register, FC6", reg.ALARM, [0]),
    ],
)
def test_hmi_listener_refuses_every_write_with_exception_02(
    what: str, address: int, values: list[int]
) -> None:
    async def body() -> None:
        async with serving(hmi=HmiConfig(port=0)) as (server, handshake), robot_and_hmi(server) as c:
            before = await c.hmi.read_holding_registers(0, count=reg.BLOCK_COUNT, device_id=1)
            if len(values) == 1:
                rr = await c.hmi.write_register(address, values[0], device_id=1)
            else:
                rr = await c.hmi.write_registers(address, values, device_id=1)
            assert rr.isError(), what
            assert rr.exception_code == 2, what
            after = await c.hmi.read_holding_registers(0, count=reg.BLOCK_COUNT, device_id=1)
            assert after.registers == before.registers
            assert handshake.counters.triggers == 0
            assert handshake.robot_registers() == [0] * reg.ROBOT_COUNT

    run(body())


def test_hmi_listener_that_cannot_bind_stops_the_robot_link_too() -> None:
    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            cfg = RobotLinkConfig(port=0, hmi=HmiConfig(port=port))
            server = RobotLinkServer(cfg, Handshake(cfg, FixedClock()), lambda events: None)
            with pytest.raises(LinesideError, match=r"robot_link\.hmi"):
                await server.start()
            with pytest.raises(LinesideError):
                _ = server.port

    run(body())


# ---- Modbus/TCP Security -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # self-signed: not from the CA
    rogue_key: Path


def _issue(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([ip]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path.write_bytes(pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a server cert for 127.0.0.1, a client cert, and a self-signed rogue client cert."""
    d = tmp_path_factory.mktemp("pki")
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "server", "client", "rogue")}
    ca = _issue("lineside test CA", keys["ca"], None, ca=True)
    ca_issuer = (ca.subject, keys["ca"])
    _write(d / "ca.pem", ca)
    _write(d / "server.pem", _issue("lineside", keys["server"], ca_issuer, server=True), keys["server"])
    _write(d / "client.pem", _issue("robot", keys["client"], ca_issuer), keys["client"])
    _write(d / "rogue.pem", _issue("rogue", keys["rogue"], None), keys["rogue"])
    return Pki(
        d / "ca.pem",
        d / "server.pem",
        d / "server.key",
        d / "client.pem",
        d / "client.key",
        d / "rogue.pem",
        d / "rogue.key",
    )


def tls_client(port: int, pki: Pki, cert: Path | None, key: Path | None) -> AsyncModbusTlsClient:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None and key is not None:
        ctx.load_cert_chain(cert, key)
    return AsyncModbusTlsClient("127.0.0.1", port=port, sslctx=ctx, timeout=1.0, retries=0, reconnect_delay=0)


def mutual_tls(pki: Pki) -> TlsConfig:
    return TlsConfig(cert=pki.server_cert, key=pki.server_key, ca=pki.ca, require_client_cert=True)


def test_tls_client_with_a_valid_certificate_reads_registers(pki: Pki) -> None:
    async def body() -> None:
        async with serving(tls=mutual_tls(pki)) as (server, _):
            client = tls_client(server.port, pki, pki.client_cert, pki.client_key)
            try:
                block = await read_or_none(client)
            finally:
                client.close()
            assert block is not None
            assert block[reg.BOOT_ID] == 1234

    run(body())


@pytest.mark.parametrize("who", ["no certificate", "a certificate from another CA"])
def test_tls_client_without_a_trusted_certificate_is_refused(pki: Pki, who: str) -> None:
    async def body() -> None:
        async with serving(tls=mutual_tls(pki)) as (server, _):
            cert, key = (None, None) if who == "no certificate" else (pki.rogue_cert, pki.rogue_key)
            client = tls_client(server.port, pki, cert, key)
            try:
                assert await read_or_none(client) is None, who
            finally:
                client.close()
            # A failed handshake never holds one of the connection slots.
            assert server.stats()["robot"]["connections"] == 0

    run(body())


def test_plain_modbus_tcp_to_the_tls_port_gets_no_reply(pki: Pki) -> None:
    async def body() -> None:
        async with serving(tls=mutual_tls(pki)) as (server, _):
            assert not await answers(server.port)
            client = AsyncModbusTcpClient(
                "127.0.0.1", port=server.port, timeout=0.5, retries=0, reconnect_delay=0
            )
            try:
                assert await read_or_none(client) is None
            finally:
                client.close()

    run(body())


def test_server_only_tls_serves_a_client_without_a_certificate(pki: Pki) -> None:
    async def body() -> None:
        tls = TlsConfig(cert=pki.server_cert, key=pki.server_key, ca=None, require_client_cert=False)
        async with serving(tls=tls) as (server, _):
            client = tls_client(server.port, pki, None, None)
            try:
                assert await read_or_none(client) is not None
            finally:
                client.close()

    run(body())


def test_mutual_tls_without_a_ca_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ValueError, match=r"tls\.ca"):
        TlsConfig(cert=pki.server_cert, key=pki.server_key, require_client_cert=True)


def test_a_key_that_does_not_match_the_certificate_is_a_lineside_error(pki: Pki) -> None:
    async def body() -> None:
        tls = TlsConfig(cert=pki.server_cert, key=pki.client_key, ca=pki.ca)
        cfg = RobotLinkConfig(port=0, tls=tls)
        server = RobotLinkServer(cfg, Handshake(cfg, FixedClock()), lambda events: None)
        with pytest.raises(LinesideError, match=r"robot_link\.tls\.cert/key"):
            await server.start()

    run(body())
