"""Inspection images on disk: their names, encoding, and durable writes.

An image is written to a temp file, fsynced and renamed before its row is committed, so a row never
points at a missing or half-written file.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Literal

import cv2
import numpy as np

from edge.atomic import atomic_write_bytes, fsync_dir
from edge.records.model import InspectionRecord
from edge.records.schema import IMAGES_DIR

# <boot>-<seq>-<VERDICT>.<ext>, and beside it a stage's heat map <boot>-<seq>-<VERDICT>.heat-<stage>.png
# and the evidence crops <boot>-<seq>-<VERDICT>.crop-<n>.png; the same name tells recover() which record an
# orphan belonged to.
_IMAGE_NAME = re.compile(r"^(\d+)-(\d+)-(ACCEPT|REJECT|FAULT)(\.(heat|crop)-[A-Za-z0-9_-]+)?\.(jpg|png)$")
_HEAT = ".heat-"
_CROP = ".crop-"


def image_relpath(record: InspectionRecord, image_format: Literal["jpg", "png"]) -> str:
    """images/YYYY-MM-DD/<boot>-<seq>-<verdict>.<ext>, the day in UTC so that DST never reorders folders."""
    day = datetime.fromtimestamp(record.triggered_at, tz=timezone.utc).strftime("%Y-%m-%d")
    name = f"{record.boot_id}-{record.seq}-{record.verdict.value}.{image_format}"
    return str(PurePosixPath(IMAGES_DIR, day, name))


def heat_relpath(image_relpath: str, stage: str) -> str:
    """Where a stage's heat map of the part lies: beside its image, named after it."""
    stem = image_relpath.rsplit(".", 1)[0]
    return f"{stem}{_HEAT}{stage}.png"


def crop_relpath(image_relpath: str, number: int) -> str:
    """Where the part's evidence crop number `number` lies: beside its image, named after it."""
    stem = image_relpath.rsplit(".", 1)[0]
    return f"{stem}{_CROP}{number}.png"


def image_of_heat(relpath: str) -> str | None:
    """The image path stem (without extension) a heat map or evidence crop belongs to; None for any other
    file."""
    stem = relpath.rsplit(".", 1)[0]
    for marker in (_HEAT, _CROP):
        if marker in stem:
            return stem.split(marker, 1)[0]
    return None


def heat_files(records_dir: Path, image_relpath: str) -> dict[str, Path]:
    """The heat maps kept beside a record's image, by stage."""
    return _companions(records_dir, image_relpath, _HEAT)


def crop_files(records_dir: Path, image_relpath: str) -> dict[str, Path]:
    """The evidence crops kept beside a record's image, by number ("0", "1", ...)."""
    return _companions(records_dir, image_relpath, _CROP)


def _companions(records_dir: Path, image_relpath: str, marker: str) -> dict[str, Path]:
    image = records_dir / image_relpath
    prefix = image.name.rsplit(".", 1)[0] + marker
    found = {}
    if image.parent.is_dir():
        for path in sorted(image.parent.glob(f"{prefix}*.png")):
            found[path.name[len(prefix) : -len(".png")]] = path
    return found


def parse_image_name(name: str) -> tuple[int, int] | None:
    """(boot_id, seq) from an image file name, or None if it is not one of ours."""
    match = _IMAGE_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def is_temp_name(name: str) -> bool:
    """A temp file left by an interrupted atomic write (edge.atomic names them `.<name>.<rand>.tmp`)."""
    return name.startswith(".") and name.endswith(".tmp")


def encode_image(image: np.ndarray, image_format: Literal["jpg", "png"], jpeg_quality: int) -> bytes:
    """Encode a BGR or grey frame; raises ValueError naming what was wrong with it."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ValueError("inspection image must be a non-empty numpy array")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"inspection image must be HxW or HxWx{{1,3,4}}, got shape {image.shape}")
    if image.dtype != np.uint8 and not (image_format == "png" and image.dtype == np.uint16):
        raise ValueError(f"inspection image dtype {image.dtype} cannot be saved as {image_format}")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else []
    try:
        ok, buffer = cv2.imencode(f".{image_format}", image, params)
    except cv2.error as exc:
        raise ValueError(f"inspection image could not be encoded as {image_format}: {exc}") from exc
    if not ok:
        raise ValueError(f"inspection image could not be encoded as {image_format}")
    return bytes(buffer.tobytes())


def write_image(records_dir: Path, relpath: str, data: bytes) -> None:
    """Write durably: the file and every folder entry leading to it are on disk when this returns."""
    target = records_dir / relpath
    day_dir = target.parent
    if not day_dir.is_dir():
        day_dir.mkdir(parents=True, exist_ok=True)
        # A new day folder must itself survive a power loss, or the renamed file inside it is lost.
        fsync_dir(day_dir.parent)
        fsync_dir(records_dir)
    atomic_write_bytes(target, data)


def remove_image(records_dir: Path, relpath: str) -> bool:
    """Delete an image file and the heat maps and crops beside it; False if the image was already gone."""
    for companion in (*heat_files(records_dir, relpath).values(), *crop_files(records_dir, relpath).values()):
        companion.unlink(missing_ok=True)
    try:
        os.unlink(records_dir / relpath)
    except FileNotFoundError:
        return False
    return True
