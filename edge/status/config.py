"""The `status:` section: the local status page and Prometheus endpoint served by the status worker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StatusConfig(BaseModel):
    """Where the status page and `/metrics` are served. Off the critical path: never changes a verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Serve the status page and /metrics from their own worker process (the line runs the "
        "same without it; if it keeps failing it is given up, never faulting the line).",
    )
    bind: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to listen on; 127.0.0.1 keeps it local, 0.0.0.0 opens it to the plant network.",
    )
    port: int = Field(8088, ge=1, le=65535, description="TCP port of the page, /api/status and /metrics.")
    history: int = Field(
        50, ge=1, le=1000, description="How many recent verdicts the page lists (and searches for a frame)."
    )
