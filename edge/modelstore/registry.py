"""The model registry as the appliance reads it: `<registry>/<name>/<version>/` folders and, per name, the
`promoted.json` pointer saying which version is current. Promotion itself (gates, writing) is training's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.errors import LinesideError
from edge.jsonmodel import read_json_model

POINTER_FILE = "promoted.json"
POINTER_SCHEMA = 1
# The same spelling the model card allows, so a name or version can never climb out of the registry.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_VERSION = re.compile(r"^[A-Za-z0-9_.+-]+$")


class PointerEvent(BaseModel):
    """One change of the pointer, kept for audits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["promote", "rollback"] = Field(description="What was done.")
    version: str = Field(description="The version that became current.")
    replaced: str | None = Field(None, description="The version that was current before.")
    at: str = Field(description="UTC time of the change, ISO 8601.")
    note: str = Field("", description="Why: the gate's figures, or the operator's note.")


class Pointer(BaseModel):
    """`<registry>/<name>/promoted.json`: the current version, the one a rollback returns to, the history."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: int = Field(POINTER_SCHEMA, alias="schema", description="Pointer file format.")
    name: str = Field(pattern=_NAME.pattern, description="Model name (the folder under the registry).")
    current: str = Field(pattern=_VERSION.pattern, description="The promoted version the line runs.")
    previous: str | None = Field(
        None, pattern=_VERSION.pattern, description="What `lineside models rollback` returns to."
    )
    history: tuple[PointerEvent, ...] = Field((), description="Every promotion and rollback, oldest first.")

    @model_validator(mode="after")
    def _check(self) -> Pointer:
        if self.schema_version != POINTER_SCHEMA:
            raise ValueError(f"schema {self.schema_version} is not supported (expected {POINTER_SCHEMA})")
        if self.previous == self.current:
            raise ValueError("previous must differ from current")
        return self


def model_name_dir(registry: Path, name: str) -> Path:
    if not _NAME.match(name) or name in (".", ".."):
        raise LinesideError(f"model name {name!r}: use letters, digits, '_', '.' and '-' only")
    return Path(registry) / name


def version_dir(registry: Path, name: str, version: str) -> Path:
    if not _VERSION.match(version) or version in (".", ".."):
        raise LinesideError(f"model version {version!r}: use letters, digits, '_', '.', '+' and '-' only")
    return model_name_dir(registry, name) / version


def pointer_path(registry: Path, name: str) -> Path:
    return model_name_dir(registry, name) / POINTER_FILE


def read_pointer(registry: Path, name: str) -> Pointer:
    """The pointer of `name`; LinesideError (one line naming the file) when missing or invalid."""
    path = pointer_path(registry, name)
    pointer = read_json_model(path, Pointer, "promotion pointer")
    if pointer.name != name:
        raise LinesideError(f"{path}: pointer names model '{pointer.name}', expected '{name}'")
    return pointer


def promoted_model_dir(registry: Path, name: str) -> Path:
    """The folder of the version currently promoted for `name` (it must exist)."""
    pointer = read_pointer(registry, name)
    folder = version_dir(registry, name, pointer.current)
    if not folder.is_dir():
        where = pointer_path(registry, name)
        raise LinesideError(f"{where}: promoted version {pointer.current} has no folder {folder}")
    return folder
