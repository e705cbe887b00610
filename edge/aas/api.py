"""The read-only AAS HTTP API (Part 2, the read operations of the shell and submodel repositories).

A pure function of a request (path, query) and the current repository (JSON dicts), so it is tested
without a socket; `server.py` puts it on HTTP. Ids in paths are base64url-encoded, as the spec says.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

from edge.aas.elementapi import ElementError, elements_view
from edge.aas.valueonly import core_level, id_short_paths, submodel_value

PROFILES = (
    "https://admin-shell.io/aas/API/3/0/AssetAdministrationShellRepositoryServiceSpecification/SSP-002",
    "https://admin-shell.io/aas/API/3/0/SubmodelRepositoryServiceSpecification/SSP-002",
)
MAX_LIMIT = 10000
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Repository:
    """What the API serves at one moment: shells and submodels as AAS JSON."""

    shells: list[dict[str, Any]]
    submodels: list[dict[str, Any]]


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status


Records = Callable[[dict[str, list[str]]], Any]  # the /records endpoint: query -> JSON body


def error_body(status: int, text: str) -> dict[str, Any]:
    """The spec's Result object with one message."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"messages": [{"code": str(status), "messageType": "Error", "text": text, "timestamp": now}]}


def handle(path: str, query: dict[str, list[str]], repo: Repository, records: Records) -> Reply:
    """Answer one GET; any problem with the request is a 4xx with the spec's error body."""
    try:
        return Reply(HTTPStatus.OK, _route(path, query, repo, records))
    except (ApiError, ElementError) as exc:
        return Reply(exc.status, error_body(exc.status, str(exc)))


def _route(path: str, query: dict[str, list[str]], repo: Repository, records: Records) -> Any:
    parts = [p for p in path.split("/") if p]
    if parts == ["description"]:
        return {"profiles": list(PROFILES)}
    if parts == ["records"]:
        return records(query)
    if parts[:1] == ["shells"]:
        return _shells(parts[1:], query, repo)
    if parts[:1] == ["submodels"]:
        return _submodels(parts[1:], query, repo.submodels)
    if parts == ["serialization"]:
        return _serialization(query, repo)
    raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource: {path}")


def _shells(parts: list[str], query: dict[str, list[str]], repo: Repository) -> Any:
    if not parts or parts == ["$reference"]:
        shells = _filter_shells(repo.shells, query)
        if parts:
            return _page([_reference("AssetAdministrationShell", s["id"]) for s in shells], query)
        return _page(shells, query)
    shell = _find(repo.shells, _decode_id(parts[0]), "shell")
    rest = parts[1:]
    if not rest:
        return shell
    if rest == ["$reference"]:
        return _reference("AssetAdministrationShell", shell["id"])
    if rest == ["asset-information"]:
        return shell["assetInformation"]
    if rest == ["submodel-refs"]:
        return _page(shell.get("submodels", []), query)
    if rest[0] == "submodels" and len(rest) >= 2:
        wanted = _decode_id(rest[1])
        referenced = {ref["keys"][-1]["value"] for ref in shell.get("submodels", [])}
        if wanted not in referenced:
            raise ApiError(HTTPStatus.NOT_FOUND, "the shell has no such submodel")
        return _submodels(rest[1:], query, repo.submodels)
    raise ApiError(HTTPStatus.NOT_FOUND, "no such resource of a shell")


def _submodels(parts: list[str], query: dict[str, list[str]], submodels: list[dict[str, Any]]) -> Any:
    if not parts or parts[0].startswith("$"):
        view = parts[0] if parts else ""
        # GetAllSubmodels-Path is not served: Part 2 3.0 leaves its result's shape open (docs/standards.md).
        if len(parts) > 1 or view not in ("", "$metadata", "$value", "$reference"):
            raise ApiError(HTTPStatus.NOT_FOUND, "no such view of the submodels")
        core = _level(query)
        _extent(query)
        chosen = _filter_submodels(submodels, query)
        return _page([_view(sm, view, core) for sm in chosen], query)
    submodel = _find(submodels, _decode_id(parts[0]), "submodel")
    if parts[1:2] == ["submodel-elements"]:
        core = _level(query)
        _extent(query)
        return elements_view(submodel, parts[2:], core, lambda items: _page(items, query))
    view = parts[1] if len(parts) == 2 else ""
    if len(parts) > 2 or view not in ("", "$metadata", "$value", "$reference", "$path"):
        raise ApiError(HTTPStatus.NOT_FOUND, "no such resource of a submodel")
    core = _level(query) if view in ("", "$value", "$path") else False
    if view in ("", "$value"):
        _extent(query)
    return _view(submodel, view, core)


def _view(submodel: dict[str, Any], view: str, core: bool) -> Any:
    if view == "$metadata":
        return {k: v for k, v in submodel.items() if k != "submodelElements"}
    if view == "$value":
        return submodel_value(submodel, core)
    if view == "$reference":
        return _reference("Submodel", submodel["id"])
    if view == "$path":
        return id_short_paths(core_level(submodel) if core else submodel)
    return core_level(submodel) if core else submodel


def _serialization(query: dict[str, list[str]], repo: Repository) -> dict[str, Any]:
    """GenerateSerializationByIds: the chosen shells and submodels (all when none are named) as one
    environment. This shell ships no concept descriptions, and an empty list is not valid AAS JSON, so
    includeConceptDescriptions=true adds none."""
    flag = (_one(query, "includeConceptDescriptions") or "false").lower()
    if flag not in ("true", "false"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "includeConceptDescriptions must be true or false")
    shell_ids = {_decode_id(t) for t in query.get("aasIds", [])}
    submodel_ids = {_decode_id(t) for t in query.get("submodelIds", [])}
    shells = [s for s in repo.shells if not shell_ids or s["id"] in shell_ids]
    submodels = [sm for sm in repo.submodels if not submodel_ids or sm["id"] in submodel_ids]
    body: dict[str, Any] = {"assetAdministrationShells": shells, "submodels": submodels}
    return {key: value for key, value in body.items() if value}


def _reference(key_type: str, identifier: str) -> dict[str, Any]:
    return {"type": "ModelReference", "keys": [{"type": key_type, "value": identifier}]}


def _find(items: list[dict[str, Any]], identifier: str, what: str) -> dict[str, Any]:
    for item in items:
        if item["id"] == identifier:
            return item
    raise ApiError(HTTPStatus.NOT_FOUND, f"no {what} with id {identifier!r}")


def decode_base64url(text: str, what: str) -> str:
    """A base64url text (padding optional) decoded to UTF-8, or a 400 naming `what`."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{what} is not base64url-encoded UTF-8") from None


def _decode_id(text: str) -> str:
    return decode_base64url(text.rstrip("="), "the id")


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return None if not values else values[-1]


def _level(query: dict[str, list[str]]) -> bool:
    level = _one(query, "level")
    if level not in (None, "core", "deep"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "level must be core or deep")
    return level == "core"


def _extent(query: dict[str, list[str]]) -> None:
    # There are no Blobs in this shell, so both extents give the same answer; a bad one is still refused.
    if _one(query, "extent") not in (None, "withBlobValue", "withoutBlobValue"):
        raise ApiError(HTTPStatus.BAD_REQUEST, "extent must be withBlobValue or withoutBlobValue")


def _page(items: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
    """The spec's paged result; the cursor is the next item's position."""
    limit_text, cursor = _one(query, "limit"), _one(query, "cursor")
    try:
        limit = MAX_LIMIT if limit_text is None else int(limit_text)
        start = 0 if cursor is None else int(decode_base64url(cursor, "cursor"))
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "limit and cursor must be what this API gave") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"limit must be 1..{MAX_LIMIT}")
    if not 0 <= start <= len(items):
        raise ApiError(HTTPStatus.BAD_REQUEST, "cursor is out of range")
    end = start + limit
    paging: dict[str, str] = {}
    if end < len(items):
        paging["cursor"] = base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=")
    return {"paging_metadata": paging, "result": items[start:end]}


def _filter_shells(shells: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    id_short = _one(query, "idShort")
    wanted = [_asset_id(text) for text in query.get("assetIds", [])]
    return [
        s for s in shells if (id_short is None or s.get("idShort") == id_short) and _has_assets(s, wanted)
    ]


def _asset_id(text: str) -> tuple[str, str]:
    try:
        data = json.loads(decode_base64url(text.rstrip("="), "assetIds"))
        return str(data["name"]), str(data["value"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "assetIds must be base64url-encoded {name, value} JSON"
        ) from None


def _has_assets(shell: dict[str, Any], wanted: list[tuple[str, str]]) -> bool:
    info = shell.get("assetInformation", {})
    held = {(s["name"], s["value"]) for s in info.get("specificAssetIds", [])}
    if "globalAssetId" in info:
        held.add(("globalAssetId", info["globalAssetId"]))
    return all(pair in held for pair in wanted)


def _filter_submodels(submodels: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    id_short = _one(query, "idShort")
    semantic = _one(query, "semanticId")
    wanted_semantic = None if semantic is None else decode_base64url(semantic.rstrip("="), "semanticId")
    return [
        sm
        for sm in submodels
        if (id_short is None or sm.get("idShort") == id_short)
        and (
            wanted_semantic is None
            or wanted_semantic in {k["value"] for k in sm.get("semanticId", {}).get("keys", [])}
        )
    ]
