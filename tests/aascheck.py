"""Independent checkers of AAS files for the tests: IDTA's aas-test-engines and aas-core-works' aas-core3.0
(the version the export declares), and a canonical form to compare two environments read by BaSyx."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, TextIO, cast

import aas_core3.jsonization as core_json
import aas_core3.verification as core_verification
import aas_core3.xmlization as core_xml
from aas_test_engines import file as idta_file
from aas_test_engines.result import AasTestResult, Level
from basyx.aas.adapter.json import object_store_to_json

from edge.aas.environment import Store

AAS_30_NAMESPACE = "https://admin-shell.io/aas/3/0"


def idta_errors(path: Path) -> list[str]:
    """IDTA's test engine on the file: the lines of every result at level ERROR or worse (none = valid)."""
    # The engine annotates TextIO but reads a zip (aasx) and json.load takes bytes: binary is what works.
    with path.open("rb") as handle:
        stream = cast(TextIO, handle)
        if path.suffix == ".aasx":
            result = idta_file.check_aasx_file(stream)
        else:
            result = idta_file.check_json_file(stream)
    return _errors(result)


def _errors(result: AasTestResult, where: str = "") -> list[str]:
    here = f"{where} / {result.message}" if where else result.message
    found = [here] if result.level in (Level.ERROR, Level.CRITICAL) and not result.sub_results else []
    for sub in result.sub_results:
        found += _errors(sub, here)
    if result.level in (Level.ERROR, Level.CRITICAL) and not found:
        found = [here]
    return found


def aas_xml_part(path: Path) -> str:
    """The AAS XML part of an AASX package (the one its aasx-origin relationship names)."""
    with zipfile.ZipFile(path) as package:
        names = [n for n in package.namelist() if n.startswith("aasx/") and n.endswith(".xml")]
        assert len(names) == 1, names
        return package.read(names[0]).decode("utf-8")


def aas_core_errors(path: Path) -> list[str]:
    """aas-core3.0's de-serialisation and verification of every constraint of the 3.0 meta-model."""
    if path.suffix == ".aasx":
        text = aas_xml_part(path)
        assert f'xmlns:aas="{AAS_30_NAMESPACE}"' in text, "the package must declare AAS 3.0"
        environment = core_xml.environment_from_str(text)
    else:
        environment = core_json.environment_from_jsonable(json.loads(path.read_text(encoding="utf-8")))
    return [f"{error.path}: {error.cause}" for error in core_verification.verify(environment)]


def canonical(store: Store) -> Any:
    """The environment as JSON with every list sorted: BaSyx keeps some of them as sets, in no order."""
    return _sorted(json.loads(object_store_to_json(store)))


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(v) for k, v in data.items()}
    if isinstance(data, list):
        return sorted((_sorted(v) for v in data), key=lambda v: json.dumps(v, sort_keys=True))
    return data


def submodel_json(environment: dict[str, Any], id_short: str) -> dict[str, Any]:
    [found] = [sm for sm in environment["submodels"] if sm["idShort"] == id_short]
    return cast(dict[str, Any], found)


def element(container: dict[str, Any], *path: str) -> dict[str, Any]:
    """The element at an idShort path inside a submodel's (or collection's) JSON."""
    node = container
    for id_short in path:
        children = node.get("submodelElements", node.get("value", []))
        [node] = [c for c in children if c.get("idShort") == id_short]
    return node
