"""The AAS API's ValueOnly serialisation (Part 2, `$value`) and `level=core`, on the JSON of a submodel."""

from __future__ import annotations

from typing import Any

_NUMBERS = {
    "xs:int",
    "xs:integer",
    "xs:long",
    "xs:short",
    "xs:byte",
    "xs:unsignedInt",
    "xs:unsignedLong",
    "xs:unsignedShort",
    "xs:unsignedByte",
    "xs:nonNegativeInteger",
    "xs:positiveInteger",
    "xs:nonPositiveInteger",
    "xs:negativeInteger",
}
_DECIMALS = {"xs:double", "xs:float", "xs:decimal"}
_CONTAINERS = ("SubmodelElementCollection", "SubmodelElementList")


def submodel_value(submodel: dict[str, Any], core: bool = False) -> dict[str, Any]:
    """`{idShort: value}` for the submodel's elements; with `core`, collections show no children."""
    return {
        e["idShort"]: element_value(e, depth=0 if core else None)
        for e in submodel.get("submodelElements", [])
        if _has_value(e)
    }


def element_value(element: dict[str, Any], depth: int | None = None) -> Any:
    """One element's value as ValueOnly JSON; `depth` 0 stops at this element's children."""
    kind = element["modelType"]
    if kind in _CONTAINERS:
        children = [] if depth == 0 else element.get("value", [])
        deeper = None if depth is None else depth - 1
        if kind == "SubmodelElementList":
            return [element_value(c, deeper) for c in children if _has_value(c)]
        return {c["idShort"]: element_value(c, deeper) for c in children if _has_value(c)}
    if kind == "Property":  # a property with no value (a time series' record description) is null
        return None if "value" not in element else _typed(element["value"], element["valueType"])
    if kind == "MultiLanguageProperty":
        return [{s["language"]: s["text"]} for s in element.get("value", [])]
    if kind == "Range":
        return {k: _typed(element[k], element["valueType"]) for k in ("min", "max") if k in element}
    if kind in ("File", "Blob"):
        return {"contentType": element.get("contentType"), "value": element.get("value")}
    return element.get("value")  # ReferenceElement: the reference as it is serialised


def _has_value(element: dict[str, Any]) -> bool:
    # A property without a value (a time series' record description) has nothing to show.
    return not (element["modelType"] == "Property" and "value" not in element)


def _typed(value: str, value_type: str) -> Any:
    """A property's lexical value as the JSON type its valueType names."""
    if value_type == "xs:boolean":
        return value in ("true", "1")
    if value_type in _NUMBERS:
        return int(value)
    if value_type in _DECIMALS:
        return float(value)
    return value


def core_level(submodel: dict[str, Any]) -> dict[str, Any]:
    """The submodel with `level=core`: its elements, but none of their children."""
    elements = []
    for element in submodel.get("submodelElements", []):
        if element["modelType"] in _CONTAINERS:
            elements.append({k: v for k, v in element.items() if k != "value"})
        else:
            elements.append(element)
    return {**submodel, "submodelElements": elements}


def id_short_paths(submodel: dict[str, Any]) -> list[str]:
    """Every element's idShortPath (`A.B`, `List[0].C`), parents before children (`$path`)."""
    paths: list[str] = []

    def walk(elements: list[dict[str, Any]], prefix: str, in_list: bool) -> None:
        for index, element in enumerate(elements):
            path = (
                f"{prefix}[{index}]"
                if in_list
                else (f"{prefix}.{element['idShort']}" if prefix else element["idShort"])
            )
            paths.append(path)
            if element["modelType"] in _CONTAINERS:
                walk(element.get("value", []), path, element["modelType"] == "SubmodelElementList")

    walk(submodel.get("submodelElements", []), "", False)
    return paths
