"""The `opcua:` section: the OPC UA Machine Vision server (an optional observer worker)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OpcUaConfig(BaseModel):
    """Where the OPC UA server listens and who may connect (off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Serve the station on OPC UA from its own worker process.")
