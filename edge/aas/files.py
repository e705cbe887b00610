"""The export as a file: AAS JSON, or an AASX package whose XML declares AAS 3.0, written atomically.

BaSyx 2.2 serialises the AAS 3.1 XML namespace; the content we build uses nothing 3.1 added, and the
3.0 and 3.1 XML schemas name the same elements, so the package declares 3.0 (what most plant tools
read today, and what IDTA's test engine checks) by binding its `aas:` prefix to the 3.0 namespace.
Reading a package back binds it to BaSyx's namespace again. docs/standards.md says why.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from basyx.aas import model
from basyx.aas.adapter import aasx
from basyx.aas.adapter._generic import XML_NS_MAP
from basyx.aas.adapter.json import object_store_to_json, read_aas_json_file

from edge.aas.environment import Store
from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError

AAS_30_NAMESPACE = "https://admin-shell.io/aas/3/0"
BASYX_NAMESPACE = XML_NS_MAP["aas"]
FORMATS = (".aasx", ".json")


def _declaration(namespace: str) -> bytes:
    return f'xmlns:aas="{namespace}"'.encode()


def environment_json(store: Store) -> bytes:
    return (object_store_to_json(store, indent=1) + "\n").encode("utf-8")


def environment_aasx(store: Store, shell_id: str) -> bytes:
    """An AASX package (OPC) holding the environment as AAS 3.0 XML."""
    raw = io.BytesIO()
    with aasx.AASXWriter(raw) as writer:
        writer.write_aas([shell_id], store, aasx.DictSupplementaryFileContainer())  # type: ignore[no-untyped-call]
    return _rebind(raw.getvalue(), BASYX_NAMESPACE, AAS_30_NAMESPACE)


def _rebind(package: bytes, old: str, new: str) -> bytes:
    """The package with its AAS XML parts' `aas:` prefix bound to `new` instead of `old`.

    Only the namespace declaration changes: every element is written with the prefix, so this renames
    the namespace exactly, without touching any value that happens to contain the same text.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith(".xml") and _declaration(old) in data[:2000]:
                data = data.replace(_declaration(old), _declaration(new), 1)
            dst.writestr(info, data)
    return out.getvalue()


def write_export(path: Path, store: Store, shell_id: str) -> Path:
    """Write the environment as `.json` or `.aasx` (by the suffix): the old file stays whole on failure."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise LinesideError(f"--out {path}: the file must end in .aasx or .json")
    data = environment_json(store) if suffix == ".json" else environment_aasx(store, shell_id)
    try:
        return atomic_write_bytes(path, data)
    except OSError as exc:
        raise LinesideError(f"--out {path}: cannot write ({exc.strerror})") from None


def read_export(path: Path) -> Store:
    """Read an export back into BaSyx objects (strictly: any defect raises)."""
    if path.suffix.lower() == ".json":
        with path.open("rb") as handle:
            return read_aas_json_file(handle, failsafe=False)
    package = _rebind(path.read_bytes(), AAS_30_NAMESPACE, BASYX_NAMESPACE)
    store: Store = model.DictIdentifiableStore()
    with aasx.AASXReader(io.BytesIO(package), failsafe=False) as reader:
        reader.read_into(store, aasx.DictSupplementaryFileContainer())  # type: ignore[no-untyped-call]
    return store
