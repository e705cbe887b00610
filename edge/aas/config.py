"""The `aas:` section: the station's identity in the Asset Administration Shell and its live API.

Every identity field has a default derived from `station.name`, so the demo exports and serves a valid
shell with no `aas:` section; a plant sets its own ids, serial number and manufacturer here.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# An absolute IRI or URN: a scheme, a colon and at least one more character, no white space. AAS ids
# are compared as strings, so the check is about what a repository and a browser will accept.
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")
LOCAL_BIND = "127.0.0.1"


def check_iri(value: str) -> str:
    """`value` if it is an absolute IRI (https://...) or URN (urn:...), else a ValueError saying so."""
    if not _IRI.match(value):
        raise ValueError(f"{value!r} is not an absolute IRI or URN (e.g. urn:acme:station:7)")
    if value.lower().startswith(("http://", "https://")) and "//" not in value[5:9]:
        raise ValueError(f"{value!r} is not an absolute http(s) IRI")
    return value


class AasConfig(BaseModel):
    """Identity of the station's shell and where its read-only AAS API is served (off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Serve the read-only AAS HTTP API from its own worker process.")
    bind: str = Field(
        LOCAL_BIND,
        min_length=1,
        description="Address the AAS API listens on; anything but 127.0.0.1 needs token_file.",
    )
    port: int = Field(8089, ge=1, le=65535, description="TCP port of the AAS API (and its /records).")
    token_file: Path | None = Field(
        None,
        description="File whose first line is the bearer token every request must carry "
        "(Authorization: Bearer ...). Required when bind is not 127.0.0.1.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the API at (written into the export's endpoints and its "
        "records link); default http://<bind>:<port> (127.0.0.1 when bound to 0.0.0.0).",
    )
    asset_id: str | None = Field(
        None, description="globalAssetId of the station (IRI or URN); default urn:lineside:asset:<station>."
    )
    shell_id: str | None = Field(
        None, description="Id of the station's shell (IRI or URN); default urn:lineside:aas:<station>."
    )
    id_prefix: str | None = Field(
        None,
        description="Prefix of the submodel ids (IRI or URN); each id is <prefix>:<Submodel>; "
        "default urn:lineside:aas:<station>:sm.",
    )
    serial_number: str | None = Field(
        None, min_length=1, description="Serial number of the station (a specificAssetId); default its name."
    )
    manufacturer_name: str = Field("lineside", min_length=1, description="Who built the station.")
    product_designation: str = Field(
        "lineside edge visual-inspection station",
        min_length=1,
        description="What the station is, in the manufacturer's words (nameplate).",
    )
    product_uri: str = Field(
        "urn:lineside:product:edge-visual-inspection",
        description="URIOfTheProduct of the nameplate (IRI or URN).",
    )
    order_code: str = Field("lineside-edge", min_length=1, description="Manufacturer's order code.")
    year_of_construction: int | None = Field(
        None, ge=1900, le=2999, description="Year the station was built."
    )
    country_of_origin: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country the station was built in."
    )
    street: str | None = Field(None, min_length=1, description="Manufacturer's street and number.")
    zipcode: str | None = Field(None, min_length=1, description="Manufacturer's postal code.")
    city: str | None = Field(None, min_length=1, description="Manufacturer's town or city.")
    national_code: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="Manufacturer's country (ISO 3166-1 alpha-2)."
    )
    shift_starts: tuple[str, ...] = Field(
        ("06:00", "14:00", "22:00"),
        min_length=1,
        max_length=6,
        description="Local start times (HH:MM) of the shifts the inspection counters are grouped by.",
    )
    shifts_kept: int = Field(21, ge=1, le=1000, description="How many recent shifts the results list.")

    @field_validator("asset_id", "shell_id", "id_prefix", "product_uri", "public_url")
    @classmethod
    def _iri(cls, value: str | None) -> str | None:
        return None if value is None else check_iri(value)

    @field_validator("shift_starts")
    @classmethod
    def _shifts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for start in value:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", start):
                raise ValueError(f"{start!r} is not a time of day HH:MM")
        if len(set(value)) != len(value):
            raise ValueError("shift start times must differ")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _token_off_loopback(self) -> AasConfig:
        # Anything but the loopback address is the plant network: never an open door there.
        if self.bind != LOCAL_BIND and self.token_file is None:
            raise ValueError(
                f"bind {self.bind} needs token_file (a bearer token); only 127.0.0.1 may go without"
            )
        return self
