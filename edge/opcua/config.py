"""The `opcua:` section: the OPC UA Machine Vision server (an optional observer worker)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpcUaConfig(BaseModel):
    """Where the OPC UA server listens and who may connect (off by default).

    The channel is always Basic256Sha256 SignAndEncrypt: a client's application certificate must be in
    `trusted_dir`, and its user must log in with a name and password from `users_file` or with a
    trusted certificate. Anonymous sessions are refused unless `allow_anonymous` is set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Serve the station on OPC UA from its own worker process.")
    bind: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to listen on; 127.0.0.1 keeps it local, 0.0.0.0 opens it to the plant network.",
    )
    port: int = Field(4840, ge=1, le=65535, description="TCP port (4840 is OPC UA's registered port).")
    path: str = Field(
        "lineside",
        pattern=r"^[A-Za-z0-9._~-]*$",
        description="Endpoint path: opc.tcp://<host>:<port>/<path> (letters, digits, . _ ~ - only).",
    )
    host_name: str | None = Field(
        None,
        description="Host name clients use in the endpoint URL and the generated certificate; default: "
        "the bind address (or this machine's name when bound to 0.0.0.0).",
    )
    state_dir: Path | None = Field(
        None,
        description="Where a generated server certificate is kept; default <records.dir>/../opcua "
        "(beside the records, e.g. /var/lib/lineside/opcua).",
    )
    certificate_file: Path | None = Field(
        None, description="Server certificate (DER or PEM); a self-signed one is generated when absent."
    )
    private_key_file: Path | None = Field(None, description="Private key (PEM) of certificate_file.")
    trusted_dir: Path | None = Field(
        None,
        description="Folder of trusted client certificates (DER or PEM): only these clients may connect, "
        "and these may also log in by certificate. Default <state_dir>/trusted. Certificates of refused "
        "clients are kept in <state_dir>/rejected for an administrator to move over.",
    )
    users_file: Path | None = Field(
        None,
        description="User names and password hashes, one 'name:scrypt$...' per line "
        "(made by `python -m edge.opcua.users add FILE NAME`); never plain passwords.",
    )
    allow_anonymous: bool = Field(
        False, description="Allow anonymous sessions (still on the encrypted channel, trusted clients only)."
    )
    results_kept: int = Field(
        20, ge=1, le=1000, description="How many recent results the Results folder holds (oldest go first)."
    )
    queue_size: int = Field(
        1000,
        ge=1,
        le=100000,
        description="Most updates waiting for the server; beyond it new ones are dropped and counted.",
    )

    @model_validator(mode="after")
    def _check(self) -> OpcUaConfig:
        if (self.certificate_file is None) != (self.private_key_file is None):
            raise ValueError("certificate_file and private_key_file go together")
        if self.enabled and self.users_file is None and not self.allow_anonymous:
            # Certificate users only is legal, but an integrator who set nothing would get a server
            # nobody can log in to without noticing why: say so at config time.
            raise ValueError(
                "set users_file (name + password hash) or allow_anonymous; see docs/standards.md"
            )
        if self.allow_anonymous and not is_loopback(self.bind):
            raise ValueError("allow_anonymous only on a loopback bind: elsewhere every user must log in")
        return self

    def endpoint_host(self) -> str:
        """The host name in the endpoint URL."""
        if self.host_name:
            return self.host_name
        return socket.gethostname() if self.bind in ("0.0.0.0", "::") else self.bind

    def endpoint_url(self) -> str:
        return f"opc.tcp://{self.endpoint_host()}:{self.port}/{self.path}"

    def resolved_state_dir(self, records_dir: Path) -> Path:
        return self.state_dir if self.state_dir is not None else records_dir.parent / "opcua"
