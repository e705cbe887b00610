"""The `status:` section: the local status page and Prometheus endpoint served by the status worker."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOCAL_BIND = "127.0.0.1"


class StatusConfig(BaseModel):
    """Where the status page and `/metrics` are served. Off the critical path: never changes a verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Serve the status page and /metrics from their own worker process (the line runs the "
        "same without it; if it keeps failing it is given up, never faulting the line).",
    )
    bind: str = Field(
        LOCAL_BIND,
        min_length=1,
        description="Address to listen on; 127.0.0.1 keeps it local, 0.0.0.0 opens it to the plant network "
        "(anything but 127.0.0.1 needs users_file or token_file).",
    )
    port: int = Field(8088, ge=1, le=65535, description="TCP port of the page, /api/status and /metrics.")
    history: int = Field(
        50, ge=1, le=1000, description="How many recent verdicts the page lists (and searches for a frame)."
    )
    users_file: Path | None = Field(
        None,
        description="Who may log in to the page from a browser: one `name:scrypt$...` line per person (the "
        "OPC UA users file format; `python -m edge.opcua.users add FILE NAME`). When set, every request "
        "needs a login or the token.",
    )
    token_file: Path | None = Field(
        None,
        description="File whose first line (16 characters or more) is the bearer token scrapers and scripts "
        "send (Authorization: Bearer ...). When set, every request needs it or a login.",
    )

    @property
    def protected(self) -> bool:
        """True when the page asks for a login or a token."""
        return self.users_file is not None or self.token_file is not None

    @model_validator(mode="after")
    def _credentials_off_loopback(self) -> StatusConfig:
        # The page shows the plant's parts and counts: off 127.0.0.1 it is on the plant network and is
        # never served there without asking who is looking.
        if self.bind != LOCAL_BIND and not self.protected:
            raise ValueError(
                f"bind {self.bind} needs users_file (browser logins) and/or token_file (a bearer token for "
                "scrapers); only 127.0.0.1 may go without"
            )
        return self
