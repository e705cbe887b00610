"""The OPC UA server in a thread of the opcua worker: its own asyncio loop, fed through a bounded queue.

The worker's loop (heartbeats, ZeroMQ) never waits on OPC UA: it offers updates with `offer`, which
drops and counts when the queue is full, and reads `failed` to crash (and be restarted) when the
server thread died. Clients, however slow or many, only ever slow this thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
from dataclasses import dataclass

from asyncua import Server, ua

from edge.opcua.address import AddressSpace, build
from edge.opcua.results import PartResult
from edge.opcua.security import LineUsers, ReadOnly, TrustedClients, application_uri, ensure_server_identity
from edge.opcua.state import VisionState
from edge.opcua.users import load_users
from edge.station.config import LinesideConfig

log = logging.getLogger(__name__)

POLL_S = 0.05
LINGER_S = 1.0  # at stop: time for subscribed clients to be told Halted before the port closes


@dataclass(frozen=True)
class StateUpdate:
    state: VisionState


Update = StateUpdate | PartResult


class VisionServer:
    """Runs the server in a daemon thread; `offer` never blocks, `close` is bounded."""

    def __init__(self, config: LinesideConfig) -> None:
        self.config = config
        self.updates: queue.Queue[Update] = queue.Queue(maxsize=config.opcua.queue_size)
        self.dropped = 0
        self.published = 0
        self.serving = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opcua-server", daemon=True)
        self.trusted: TrustedClients | None = None
        self.users: LineUsers | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or (self._thread.ident is not None and not self._thread.is_alive())

    def start(self) -> None:
        self._thread.start()

    def offer(self, update: Update) -> bool:
        """Queue an update for the server; False (counted) when it is behind."""
        try:
            self.updates.put_nowait(update)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout_s: float) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("opcua: server thread did not stop within %.1f s", timeout_s)

    def counts(self) -> dict[str, int]:
        return {
            "published": self.published,
            "dropped": self.dropped,
            "refused_clients": self.trusted.refused if self.trusted else 0,
            "refused_logins": self.users.refused if self.users else 0,
        }

    # -- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # the worker sees it through `failed` and crashes to be restarted
            log.error("opcua: server failed: %s", exc, exc_info=True)
            self.error = exc

    async def _serve(self) -> None:
        server = await self._make_server()
        space = await build(server, self.config, configuration_id(self.config))
        async with server:
            self.serving.set()
            log.info("opcua: serving %s (Basic256Sha256 SignAndEncrypt)", self.config.opcua.endpoint_url())
            while not self._stop.is_set():
                await self._apply(space)
                await asyncio.sleep(POLL_S)
            await self._apply(space)  # what arrived while stopping (the last parts, Halted)
            await asyncio.sleep(LINGER_S)

    async def _apply(self, space: AddressSpace) -> None:
        for _ in range(self.updates.maxsize):
            try:
                update = self.updates.get_nowait()
            except queue.Empty:
                return
            if isinstance(update, StateUpdate):
                await space.set_state(update.state)
            else:
                await space.add_result(update)
                self.published += 1

    async def _make_server(self) -> Server:
        cfg, station = self.config.opcua, self.config.station.name
        folder = cfg.resolved_state_dir(self.config.records.dir)
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{cfg.bind}:{cfg.port}/{cfg.path}")
        server.set_server_name(f"lineside {station}")
        await server.set_application_uri(application_uri(station))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], ReadOnly())
        tokens: list[type] = [ua.UserNameIdentityToken, ua.X509IdentityToken]
        if cfg.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        if cfg.certificate_file is not None and cfg.private_key_file is not None:
            cert, key = cfg.certificate_file, cfg.private_key_file
        else:
            identity = ensure_server_identity(folder, application_uri(station), cfg.endpoint_host())
            cert, key = identity.certificate, identity.private_key
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        self.trusted = TrustedClients(cfg.trusted_dir or folder / "trusted", folder / "rejected")
        server.set_certificate_validator(self.trusted)
        users = load_users(cfg.users_file) if cfg.users_file is not None else {}
        self.users = LineUsers(users, self.trusted, cfg.allow_anonymous)
        server.iserver.user_manager = self.users
        return server


def configuration_id(config: LinesideConfig) -> str:
    """InternalConfigurationId: a digest of the station's validated configuration."""
    digest = hashlib.sha256(config.model_dump_json().encode("utf-8")).hexdigest()
    return f"sha256:{digest[:16]}"
