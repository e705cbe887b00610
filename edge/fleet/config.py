"""The `fleet:` section: publication of every final record to an MQTT broker (off by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FleetTlsConfig(BaseModel):
    """TLS to the broker; the CA file is required, a client certificate and key are optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path = Field(description="CA certificate (PEM) the broker's certificate must chain to.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM), for brokers that ask.")
    key_file: Path | None = Field(None, description="Client private key (PEM) of cert_file.")

    @model_validator(mode="after")
    def _pair(self) -> FleetTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class FleetConfig(BaseModel):
    """Where final records go: `<topic_prefix>/<station>/records` and the retained `.../status`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Publish each final record to the MQTT broker below.")
    host: str = Field("127.0.0.1", min_length=1, description="MQTT broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 is usual with TLS).")
    topic_prefix: str = Field(
        "lineside",
        min_length=1,
        pattern=r"^[^#+]+$",
        description="Topics are <topic_prefix>/<station.name>/records and .../status (no MQTT wildcards).",
    )
    qos: Literal[0, 1, 2] = Field(
        1,
        description="MQTT QoS of the records; 1 or 2 are held (bounded) while the broker is away, 0 dropped.",
    )
    keepalive_s: int = Field(
        10,
        ge=2,
        le=600,
        description="MQTT keepalive; the broker sends the 'offline' will ~1.5x this after "
        "the link goes silent (at once when the connection drops).",
    )
    queue_size: int = Field(
        1000,
        ge=1,
        description="Most records held for the broker; beyond it new ones are dropped and counted.",
    )
    reconnect_min_s: int = Field(1, ge=1, description="First wait (s) before reconnecting; then it doubles.")
    reconnect_max_s: int = Field(30, ge=1, description="Longest wait (s) between reconnect attempts.")
    client_id: str | None = Field(None, description="MQTT client id; default lineside-<station.name>.")
    username: str | None = Field(None, description="Broker user name, if it asks for one.")
    password_file: Path | None = Field(
        None, description="File holding the broker password (first line), kept out of the config."
    )
    tls: FleetTlsConfig | None = Field(None, description="TLS to the broker; plain TCP when absent.")

    @model_validator(mode="after")
    def _check(self) -> FleetConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self
