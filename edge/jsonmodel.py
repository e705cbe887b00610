"""Reading a JSON file into a pydantic model, with one-line errors that name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from edge.errors import LinesideError

T = TypeVar("T", bound=BaseModel)


def read_json_model(path: Path, model: type[T], what: str) -> T:
    """`path` parsed as `model`; LinesideError "<path>: ..." naming what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LinesideError(f"{path}: {what} missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LinesideError(f"{path}: unreadable {what} ({exc})") from None
    return validate_model(model, raw, str(path))


def validate_model(model: type[T], raw: object, origin: str) -> T:
    """`raw` (parsed JSON or YAML, flags) as `model`; LinesideError "<origin>: field 'x.y': why"."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise LinesideError(f"{origin}: field '{where}': {first['msg']}") from None
