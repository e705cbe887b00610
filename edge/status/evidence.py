"""The status page's evidence routes, read only: `/api/evidence/<part>` (the record's evidence as JSON, with
its lines of text) and `/evidence/<part>.png` (its evidence picture), where <part> is SEQ or BOOT-SEQ.

Read from the records database (a read-only snapshot) and the kept images, never from the live pipeline.
"""

from __future__ import annotations

import json
import re
import sqlite3
from http import HTTPStatus
from pathlib import Path

from edge.errors import LinesideError
from edge.locale.names import Glossary, say_named
from edge.records.evidence import evidence_lines, evidence_png, read_record
from edge.records.explain import reason_message

PREFIXES = ("/api/evidence/", "/evidence/")
_PART = re.compile(r"^(?:(\d{1,5})[-:])?(\d{1,12})$")

Response = tuple[HTTPStatus, str, bytes]


def _not_found(why: str) -> Response:
    return HTTPStatus.NOT_FOUND, "text/plain", (why + "\n").encode("utf-8")


def evidence_response(
    records_dir: Path, path: str, lang: str | None = "en", glossary: Glossary | None = None
) -> Response:
    """The reply to a GET of an evidence route (the path without its query); the JSON's lines and reason
    in `lang` (None: the locale's), re-rendered from the record's codes, class and stage names in the
    plant's words from `glossary`."""
    as_png = path.startswith("/evidence/")
    name = path.rsplit("/", maxsplit=1)[-1]
    if as_png:
        if not name.endswith(".png"):
            return _not_found("evidence pictures end in .png")
        name = name[: -len(".png")]
    match = _PART.match(name)
    if match is None:
        return _not_found("expected /api/evidence/SEQ or /api/evidence/BOOT-SEQ")
    key = f"{match.group(1)}:{match.group(2)}" if match.group(1) else match.group(2)
    try:
        record = read_record(records_dir, key)
        if as_png:
            return HTTPStatus.OK, "image/png", evidence_png(records_dir, record, lang, glossary=glossary)
    except (
        LinesideError,
        sqlite3.Error,
        OSError,
        ValueError,
    ) as exc:  # a page request never stops the server
        return _not_found(str(exc))
    reason = reason_message(record.evidence)
    body = {
        "boot_id": record.boot_id,
        "seq": record.seq,
        "part_id": record.part_id,
        "verdict": record.verdict.value,
        "near_threshold": record.near_threshold,
        "evidence": record.evidence,
        "lines": evidence_lines(record, lang, glossary),
        "reason": None if reason is None else say_named(reason, lang, glossary),
        "picture": f"/evidence/{record.boot_id}-{record.seq}.png",
    }
    return HTTPStatus.OK, "application/json", json.dumps(body, ensure_ascii=False).encode("utf-8")
