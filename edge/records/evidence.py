"""A record's evidence for people: its lines of text and its evidence picture (crops with the box or heat
map drawn, the rule and margin written under them).

The lines come from edge/records/explain.py (English or Korean, from the record's language-neutral codes
and numbers). English is written with OpenCV's stroke font (ASCII only); Korean with Pillow and a CJK font
(edge/records/picture_text.py), or in English where none is installed. Read only: used by `lineside
records show` and the status page.
"""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.locale import FALLBACK, environment_language, language_from
from edge.locale.names import Glossary
from edge.records.crops import evidence_crops
from edge.records.explain import evidence_lines, finding_text
from edge.records.images import crop_files, heat_files
from edge.records.marks import resolve_key
from edge.records.model import InspectionRecord
from edge.records.picture_text import cjk_font, draw_lines, wrap
from edge.records.schema import DB_FILE, open_reader, row_to_record, select_record

__all__ = ["evidence_lines", "evidence_png", "finding_text", "picture_language", "read_record"]

FONT = cv2.FONT_HERSHEY_SIMPLEX  # OpenCV's own stroke font: nothing downloaded, ASCII only
TEXT_SCALE = 0.5
LINE_PX = 20
MIN_WIDTH = 640
CHAR_PX = 8  # a character's width at TEXT_SCALE, for wrapping
VERDICT_COLOURS = {"ACCEPT": (60, 160, 60), "REJECT": (40, 40, 230), "FAULT": (0, 140, 255)}


def read_record(records_dir: Path, key: str) -> InspectionRecord:
    """The record named SEQ or BOOT:SEQ, from a read-only snapshot; LinesideError in one line otherwise."""
    db_path = records_dir / DB_FILE
    boot_id, seq = resolve_key(db_path, key)
    conn = open_reader(db_path)
    try:
        sql = f"{select_record(conn)} WHERE boot_id = ? AND seq = ?"
        row = conn.execute(sql, (boot_id, seq)).fetchone()
    except sqlite3.DatabaseError as exc:
        raise LinesideError(f"{db_path}: cannot read records ({exc})") from exc
    finally:
        conn.close()
    if row is None:
        raise LinesideError(f"{db_path}: no record {key}")
    return row_to_record(row)


def _stored_crops(records_dir: Path, record: InspectionRecord) -> list[npt.NDArray[np.uint8]]:
    """The crops kept with the record; drawn afresh from its kept image when it has none (e.g. a near-
    threshold ACCEPT kept before crops were)."""
    if record.image_path is None:
        return []
    crops = []
    for path in crop_files(records_dir, record.image_path).values():
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is not None:
            crops.append(np.asarray(pixels, np.uint8))
    if crops or not record.evidence:
        return crops
    image = cv2.imread(str(records_dir / record.image_path), cv2.IMREAD_COLOR)
    if image is None:
        return []
    heat = {stage: path.read_bytes() for stage, path in heat_files(records_dir, record.image_path).items()}
    return [c.pixels for c in evidence_crops(np.asarray(image, np.uint8), heat, record.evidence)]


def _wrap(line: str, width_px: int) -> list[str]:
    """The line in ASCII (the stroke font has nothing else), wrapped at words to fit the picture."""
    text = line.encode("ascii", "replace").decode("ascii")
    return textwrap.wrap(text, max(20, width_px // CHAR_PX), subsequent_indent="    ") or [""]


def picture_language(lang: str | None) -> str:
    """The language an evidence picture asked in `lang` (None: the locale's) is written in: English when
    its letters need a font this system does not have."""
    language = environment_language() if lang is None else language_from(lang)
    return language if language == FALLBACK or cjk_font() is not None else FALLBACK


def evidence_png(
    records_dir: Path,
    record: InspectionRecord,
    lang: str | None = "en",
    font: Path | None = None,
    glossary: Glossary | None = None,
) -> bytes:
    """The evidence picture: the crops side by side, the verdict, rule and margin written under them, in
    `picture_language(lang)` with the plant's names from `glossary`; `font` (a tests' seam) replaces the
    CJK font found on the system."""
    crops = _stored_crops(records_dir, record)
    gap = 8
    crops_width = sum(c.shape[1] for c in crops) + gap * (len(crops) + 1)
    width = max(MIN_WIDTH, crops_width)
    language = picture_language(lang)
    font = (font or cjk_font()) if language != FALLBACK else None
    if font is not None:
        said = evidence_lines(record, language, glossary)
        lines = [piece for line in said for piece in wrap(line, width - 2 * gap, font)]
    else:
        said = evidence_lines(record, FALLBACK, glossary)
        lines = [piece for line in said for piece in _wrap(line, width - 2 * gap)]
    crops_height = max((c.shape[0] for c in crops), default=0)
    top = crops_height + 2 * gap if crops else gap
    canvas = np.full((top + LINE_PX * len(lines) + gap, width, 3), 32, np.uint8)
    x = gap
    for crop in crops:
        canvas[gap : gap + crop.shape[0], x : x + crop.shape[1]] = crop
        x += crop.shape[1] + gap
    colour = VERDICT_COLOURS.get(record.verdict.value, (240, 240, 240))
    if font is not None:
        inks = (colour, (235, 235, 235))
        canvas = draw_lines(canvas, lines, origin=(gap, top + 2), line_px=LINE_PX, inks=inks, font_path=font)
        lines = []
    for row, line in enumerate(lines):
        y = top + LINE_PX * (row + 1) - 6
        ink = colour if row == 0 else (235, 235, 235)
        cv2.putText(canvas, line, (gap, y), FONT, TEXT_SCALE, ink, 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise ValueError("evidence picture could not be encoded")
    return bytes(png.tobytes())
