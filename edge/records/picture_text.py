"""Text on an evidence picture in any language: OpenCV's stroke font draws ASCII only, so a language with
other letters (Korean) is drawn with Pillow and a CJK font from the system (Debian `fonts-noto-cjk`).

Where no such font (or Pillow) is installed, `text_font` says so and the picture is drawn in English:
never an exception, never boxes in place of letters.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# Fonts with Hangul, in order of preference; a .ttc's Korean face is at KOREAN_FACE.
CJK_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJKkr-Regular.otf"),
    Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf"),
)
KOREAN_FACE = 1  # Noto Sans CJK's collection: JP, KR, SC, TC, HK
TEXT_PX = 15


def cjk_font() -> Path | None:
    """The first installed font with Hangul that Pillow can load; None when there is none (or no Pillow)."""
    try:
        import PIL.ImageFont  # noqa: F401  (without Pillow: English pictures)
    except ImportError:
        return None
    for path in CJK_FONTS:
        try:
            if path.is_file() and _font(path, TEXT_PX) is not None:
                return path
        except OSError:  # an unreadable or broken font file: the next one, else English
            continue
    return None


@functools.lru_cache(maxsize=4)
def _font(path: Path, size: int) -> Any:
    from PIL import ImageFont

    index = KOREAN_FACE if path.suffix == ".ttc" else 0
    return ImageFont.truetype(str(path), size, index=index)


def text_width(text: str, font_path: Path, size: int = TEXT_PX) -> int:
    """How wide `text` is drawn in the font, in pixels."""
    return int(_font(font_path, size).getlength(text) + 0.5)


def wrap(line: str, width_px: int, font_path: Path, size: int = TEXT_PX) -> list[str]:
    """`line` broken at spaces so that each piece fits `width_px`, later pieces indented."""
    font = _font(font_path, size)
    pieces: list[str] = []
    current = ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and font.getlength(candidate) > width_px:
            pieces.append(current)
            current = "    " + word
        else:
            current = candidate
    return [*pieces, current]


def draw_lines(
    canvas: npt.NDArray[np.uint8],
    lines: Sequence[str],
    *,
    origin: tuple[int, int],
    line_px: int,
    inks: Sequence[tuple[int, int, int]],
    font_path: Path,
    size: int = TEXT_PX,
    outline: tuple[int, int, int] | None = None,
) -> npt.NDArray[np.uint8]:
    """`canvas` (BGR) with `lines` written from `origin` (left, top), one every `line_px`, line i in
    `inks[min(i, len(inks) - 1)]` (BGR), edged in `outline` (BGR) to stand out on a picture."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(canvas[:, :, ::-1]))
    draw = ImageDraw.Draw(image)
    font = _font(font_path, size)
    left, top = origin
    for row, line in enumerate(lines):
        blue, green, red = inks[min(row, len(inks) - 1)]
        place, ink = (left, top + line_px * row), (red, green, blue)
        if outline is None:
            draw.text(place, line, font=font, fill=ink)
        else:
            edge = (outline[2], outline[1], outline[0])
            draw.text(place, line, font=font, fill=ink, stroke_width=2, stroke_fill=edge)
    drawn: npt.NDArray[np.uint8] = np.asarray(image, np.uint8)[:, :, ::-1].copy()
    return drawn
