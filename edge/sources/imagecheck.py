"""Turn file bytes or a captured array into a checked BGR image, or a FrameError naming where it came from.

Image files are sized from their header before decoding (PNG, JPEG, BMP, TIFF), so a huge or
decompression-bomb file is refused without allocating it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.sources.base import FrameError

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers carry the size
_JPEG_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}  # markers without a length field
# An uncompressed 16-bit 4-channel TIFF is 8 bytes a pixel; anything bigger cannot be a legal image.
_MAX_BYTES_PER_PIXEL = 8
_HEADER_SLACK_BYTES = 1 << 20


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    width, height = struct.unpack("<ii", data[18:26])
    return abs(int(width)), abs(int(height))  # a negative height means rows stored top-down


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return None
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for k in range(count):
        entry = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = int(struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0])
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def peek_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image file's header, or None for an unknown or unreadable header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"BM"):
        return _bmp_size(data)
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return _tiff_size(data)
    return None


def _refuse_pixels(width: int, height: int, origin: str, cfg: SourceConfig) -> None:
    if width * height > cfg.max_pixels:
        raise FrameError(f"{origin}: image is {width}x{height}, more than max_pixels={cfg.max_pixels}")


def conform(image: np.ndarray, origin: str, cfg: SourceConfig) -> np.ndarray:
    """Return `image` as HxWx3 uint8 BGR of the expected size, or raise FrameError naming `origin`."""
    if image.size == 0:
        raise FrameError(f"{origin}: empty frame")
    if image.dtype != np.uint8:
        raise FrameError(f"{origin}: frame dtype is {image.dtype}, expected uint8")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameError(f"{origin}: frame shape is {image.shape}, expected (height, width, 3)")
    height, width = int(image.shape[0]), int(image.shape[1])
    _refuse_pixels(width, height, origin, cfg)
    expected = cfg.expected_size
    if expected is not None and (width, height) != expected:
        raise FrameError(
            f"{origin}: frame is {width}x{height}, expected {expected[0]}x{expected[1]} "
            "(expected_width x expected_height)"
        )
    return image


def read_image_file(path: Path, cfg: SourceConfig) -> np.ndarray:
    """Read, size-check and decode one image file the way training does (cv2, IMREAD_COLOR)."""
    origin = str(path)
    try:
        byte_count = path.stat().st_size
        if byte_count > cfg.max_pixels * _MAX_BYTES_PER_PIXEL + _HEADER_SLACK_BYTES:
            raise FrameError(f"{origin}: file is {byte_count} bytes, too big for max_pixels={cfg.max_pixels}")
        data = path.read_bytes()
    except OSError as exc:
        raise FrameError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise FrameError(f"{origin}: empty file")
    size = peek_size(data)
    if size is not None:
        _refuse_pixels(size[0], size[1], origin, cfg)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise FrameError(f"{origin}: not a readable image ({str(exc).strip().splitlines()[-1]})") from None
    if image is None:
        raise FrameError(f"{origin}: corrupt, truncated or not an image")
    return conform(image, origin, cfg)
