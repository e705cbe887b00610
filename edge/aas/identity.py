"""The ids of the station's shell, asset and submodels, from the `aas:` section or derived from its name."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from edge.aas.config import AasConfig, check_iri
from edge.errors import LinesideError


@dataclass(frozen=True)
class Identity:
    """Who the station is in the AAS world: stable ids (the same every export) and its serial number."""

    station: str
    asset_id: str
    shell_id: str
    id_prefix: str
    serial_number: str
    public_url: str

    def submodel_id(self, name: str) -> str:
        """`<prefix>:<name>` for a URN prefix, `<prefix>/<name>` for an http(s) one."""
        separator = "/" if self.id_prefix.lower().startswith(("http://", "https://")) else ":"
        return f"{self.id_prefix.rstrip('/:')}{separator}{name}"


def station_identity(aas: AasConfig, station_name: str) -> Identity:
    """The identity; a derived id that is not a valid URN names the field to set (one line)."""
    # Percent-encoding keeps any station name a valid URN segment, and the same name the same id.
    slug = quote(station_name, safe="-._~")
    derived = {
        "asset_id": aas.asset_id or f"urn:lineside:asset:{slug}",
        "shell_id": aas.shell_id or f"urn:lineside:aas:{slug}",
        "id_prefix": aas.id_prefix or f"urn:lineside:aas:{slug}:sm",
    }
    for field, value in derived.items():
        try:
            check_iri(value)
        except ValueError as exc:
            raise LinesideError(f"aas.{field}: {exc}") from None
    if len({derived["asset_id"], derived["shell_id"]}) != 2:
        raise LinesideError("aas.shell_id: must differ from aas.asset_id (a shell is not its asset)")
    # Bound to every address, the API is also on the loopback one; a plant sets public_url instead.
    host = "127.0.0.1" if aas.bind in ("0.0.0.0", "::") else aas.bind
    host = f"[{host}]" if ":" in host else host
    return Identity(
        station=station_name,
        serial_number=aas.serial_number or station_name,
        public_url=(aas.public_url or f"http://{host}:{aas.port}").rstrip("/"),
        **derived,
    )
