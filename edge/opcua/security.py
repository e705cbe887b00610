"""OPC UA security: the server's certificate, the folder of trusted clients, and who may log in.

The channel is Basic256Sha256 SignAndEncrypt only. A client's application certificate must be in the
trusted folder (re-read when the folder changes, so trusting UaExpert needs no restart); a refused one
is kept in `rejected/` for an administrator to move over. Users log in with a name and password
(edge/opcua/users.py) or a trusted certificate; anonymous only when configured.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.atomic import atomic_write_bytes
from edge.opcua.users import check_login

log = logging.getLogger(__name__)

CERT_DAYS = 3650  # a self-signed appliance certificate: clients pin it, so a short life only breaks them
RENEW_BEFORE = timedelta(days=30)
MAX_REJECTED = 100  # bounded: a client retrying with new certificates cannot fill the disk


@dataclass(frozen=True)
class ServerIdentity:
    certificate: Path
    private_key: Path


def application_uri(station: str) -> str:
    """The server's ApplicationUri; it is also the URI in its certificate."""
    return f"urn:lineside:{station}"


def ensure_server_identity(folder: Path, app_uri: str, host: str) -> ServerIdentity:
    """The server certificate + key in `folder/own`, generated (key first, then certificate) when absent,
    expiring, for another ApplicationUri or not a pair: a crash between the two writes is repaired."""
    own = folder / "own"
    own.mkdir(parents=True, exist_ok=True)
    os.chmod(own, 0o700)  # the key inside is written 0644 by the atomic rename: the folder guards it
    cert_path, key_path = own / "server_cert.der", own / "server_key.pem"
    why = _unusable(cert_path, key_path, app_uri)
    if why is None:
        return ServerIdentity(cert_path, key_path)
    log.warning("opcua: generating a self-signed server certificate in %s (%s)", own, why)
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(app_uri),
        x509.DNSName(socket.gethostname()),
    ]
    try:
        names.append(x509.IPAddress(ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"lineside {app_uri.rsplit(':', 1)[-1]}",
        {"organizationName": "lineside"},
        names,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=CERT_DAYS,
    )
    atomic_write_bytes(key_path, cert_gen.dump_private_key_as_pem(key))
    os.chmod(key_path, 0o600)
    atomic_write_bytes(cert_path, cert.public_bytes(serialization.Encoding.DER))
    return ServerIdentity(cert_path, key_path)


def _unusable(cert_path: Path, key_path: Path, app_uri: str) -> str | None:
    if not cert_path.exists() or not key_path.exists():
        return "none yet"
    try:
        cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, OSError) as exc:
        return f"unreadable: {exc}"
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        return "certificate and key are not a pair"
    if cert.not_valid_after_utc - datetime.now(timezone.utc) < RENEW_BEFORE:
        return "expiring"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if app_uri not in san.get_values_for_type(x509.UniformResourceIdentifier):
        return f"made for another application URI than {app_uri}"
    return None


def thumbprint(cert: x509.Certificate) -> str:
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class TrustedClients:
    """The trusted folder as a certificate validator: re-read when it changes, refusals kept in rejected/."""

    OPTIONS = CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT

    def __init__(self, trusted: Path, rejected: Path) -> None:
        self.trusted, self.rejected = trusted, rejected
        trusted.mkdir(parents=True, exist_ok=True)
        self._stamp: tuple[int, ...] | None = None
        self._store = TrustStore([trusted], [])
        self.refused = 0

    def _folder_stamp(self) -> tuple[int, ...]:
        files = sorted(p for p in self.trusted.iterdir() if p.is_file())
        return (self.trusted.stat().st_mtime_ns, *(p.stat().st_mtime_ns for p in files))

    async def _current(self) -> TrustStore:
        stamp = self._folder_stamp()
        if stamp != self._stamp:
            store = TrustStore([self.trusted], [])
            await store.load()
            self._store, self._stamp = store, stamp
        return self._store

    def trusts(self, cert: x509.Certificate) -> bool:
        """Against the folder as last loaded (each new session's channel check reloads it first)."""
        return bool(self._store.is_trusted(cert))

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        """Refuse (raise) a client whose certificate is not trusted, expired or not its application's."""
        try:
            await CertificateValidator(self.OPTIONS, await self._current()).validate(cert, app)
        except ServiceError:
            self.refused += 1
            self._keep_rejected(cert)
            log.warning(
                "opcua: refused client %s (certificate %s not trusted or not valid); to trust it, move "
                "it from %s to %s",
                app.ApplicationUri,
                thumbprint(cert),
                self.rejected,
                self.trusted,
            )
            raise

    def _keep_rejected(self, cert: x509.Certificate) -> None:
        try:
            self.rejected.mkdir(parents=True, exist_ok=True)
            if sum(1 for _ in self.rejected.iterdir()) >= MAX_REJECTED:
                return
            name = self.rejected / f"{thumbprint(cert)}.der"
            if not name.exists():
                atomic_write_bytes(name, cert.public_bytes(serialization.Encoding.DER))
        except OSError as exc:  # a full or read-only disk must not turn a refusal into a crash
            log.warning("opcua: cannot keep the rejected certificate: %s", exc)


class LineUsers:
    """asyncua's user manager: a password from the users file, a trusted certificate, or anonymous if allowed.

    Every user is a reader: the address space is read-only to clients (see address.py), so no role may
    change anything the line depends on.
    """

    def __init__(self, users: dict[str, str], trusted: TrustedClients, allow_anonymous: bool) -> None:
        self.users, self.trusted, self.allow_anonymous = users, trusted, allow_anonymous
        self.refused = 0

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is not None:
            if check_login(self.users, username, password):
                return User(role=UserRole.User, name=username)
            log.warning("opcua: refused login of user %r (unknown or wrong password)", username)
        elif certificate is not None:
            # asyncua checked the signature over the token and hands over the certificate as DER; trust
            # is ours to decide, against the folder the channel's check reloaded for this very session.
            if isinstance(certificate, bytes):
                certificate = x509.load_der_x509_certificate(certificate)
            if self.trusted.trusts(certificate):
                return User(role=UserRole.User, name=f"certificate {thumbprint(certificate)}")
            log.warning("opcua: refused certificate login (%s not trusted)", thumbprint(certificate))
        elif self.allow_anonymous:
            return User(role=UserRole.User, name="anonymous")
        self.refused += 1
        return None


class ReadOnly(PermissionRuleset):  # type: ignore[misc]
    """Every logged-in user may browse, read, subscribe and call; nobody may write or change nodes.

    (Calls reach only the Machine Vision methods, which refuse: address.py.)
    """

    ALLOWED = frozenset(ua.NodeId(t) for t in USER_TYPES) - {
        ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
    }

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        return user is not None and action_type_id in self.ALLOWED
