"""The submodel-element read operations of the AAS API (`/submodels/{id}/submodel-elements/...`).

Elements are found by their idShortPath (`CurrentShift.GoodQuantity`, `Shifts[0].ShiftStart`); every
answer is cut from the submodel's AAS JSON, so it is exactly what the whole submodel says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from edge.aas.valueonly import element_value

CONTAINERS = ("SubmodelElementCollection", "SubmodelElementList")
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_NAME = r"[A-Za-z][A-Za-z0-9_-]*(?:\[\d+\])*"
_PATH = re.compile(rf"^{_NAME}(?:\.{_NAME})*$")


class ElementError(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status


Page = Callable[[list[Any]], Any]


def elements_view(submodel: dict[str, Any], parts: list[str], core: bool, page: Page) -> Any:
    """`parts` after `submodel-elements`: nothing or a `$view` (all elements, paged), or a path and a view."""
    top = submodel.get("submodelElements", [])
    if not parts or parts[0].startswith("$"):
        view = parts[0] if parts else ""
        if len(parts) > 1 or view not in ("", "$metadata", "$value", "$reference", "$path"):
            raise ElementError(HTTPStatus.NOT_FOUND, "no such view of the submodel elements")
        if view == "$path":
            return page([p for e in top for p, _ in _walk(e, e["idShort"], core)])
        if view == "$value":
            return page([{e["idShort"]: element_value(e, 0 if core else None)} for e in top])
        if view == "$reference":
            return page([_reference(submodel["id"], [(e["modelType"], e["idShort"])]) for e in top])
        return page([_metadata(e) if view else _level(e, core) for e in top])
    path, view = parts[0], parts[1] if len(parts) > 1 else ""
    if len(parts) > 2:
        raise ElementError(HTTPStatus.NOT_FOUND, "no such resource of a submodel element")
    element, keys = find(submodel, path)
    if view == "":
        return _level(element, core)
    if view == "$metadata":
        return _metadata(element)
    if view == "$value":  # an element's value is an object named by its idShort (a list item's is bare)
        value = element_value(element, 0 if core else None)
        return {element["idShort"]: value} if "idShort" in element else value
    if view == "$reference":
        return _reference(submodel["id"], keys)
    if view == "$path":
        if element["modelType"] not in CONTAINERS:
            raise ElementError(HTTPStatus.BAD_REQUEST, "$path is only for collections and lists")
        return [p for p, _ in _walk(element, path, core)]
    if view == "attachment":
        raise ElementError(HTTPStatus.NOT_FOUND, "this shell has no File elements to download")
    raise ElementError(HTTPStatus.NOT_FOUND, "no such view of a submodel element")


def find(submodel: dict[str, Any], path: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The element at an idShortPath, and the reference keys (type, value) from the submodel to it."""
    if not _PATH.match(path):
        raise ElementError(HTTPStatus.BAD_REQUEST, f"{path!r} is not an idShortPath")
    tokens = _TOKEN.findall(path)
    children: list[dict[str, Any]] = submodel.get("submodelElements", [])
    element: dict[str, Any] | None = None
    keys: list[tuple[str, str]] = []
    for name, index in tokens:
        if index:
            element = children[int(index)] if element is not None and int(index) < len(children) else None
        else:
            element = next((c for c in children if c.get("idShort") == name), None)
        if element is None:
            raise ElementError(HTTPStatus.NOT_FOUND, f"no element at {path!r}")
        keys.append((element["modelType"], index or name))
        children = element.get("value", []) if element["modelType"] in CONTAINERS else []
    assert element is not None
    return element, keys


def _walk(element: dict[str, Any], path: str, core: bool) -> list[tuple[str, dict[str, Any]]]:
    """(path, element) for the element and, unless `core`, everything below it."""
    found = [(path, element)]
    if element["modelType"] not in CONTAINERS or core:
        return found
    in_list = element["modelType"] == "SubmodelElementList"
    for index, child in enumerate(element.get("value", [])):
        child_path = f"{path}[{index}]" if in_list else f"{path}.{child['idShort']}"
        found += _walk(child, child_path, core)
    return found


def _level(element: dict[str, Any], core: bool) -> dict[str, Any]:
    """`level=core`: the element and its direct children, without the children's own children."""
    if not core or element["modelType"] not in CONTAINERS:
        return element
    children = [_metadata(c) if c["modelType"] in CONTAINERS else c for c in element.get("value", [])]
    return {**element, "value": children}


def _metadata(element: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in element.items() if k != "value"}


def _reference(submodel_id: str, keys: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "ModelReference",
        "keys": [{"type": "Submodel", "value": submodel_id}, *({"type": t, "value": v} for t, v in keys)],
    }
