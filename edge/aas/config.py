"""The `aas:` section: the station's identity in the Asset Administration Shell and its live API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AasConfig(BaseModel):
    """Identity of the station's shell and where its read-only AAS API is served (off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Serve the read-only AAS HTTP API from its own worker process.")
