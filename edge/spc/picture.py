"""A control chart picture of one alarm, drawn with OpenCV (always on the appliance; matplotlib is not):
the chart's points around the alarm, its centre line and limits, the alarm's pattern in red, with a title
(chart, rule, where it fired), the axis's unit and a legend.

The live alarms worker writes one per alarm under the records folder, as the alarm's evidence, in the
station's language: English with OpenCV's stroke font; Korean with Pillow and a CJK font from the system
(edge/records/picture_text.py). Without such a font the picture is English and the log says so once.
`lineside records alarms --png` draws the matplotlib version (lineside/commands/records_alarms_png.py).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.i18n import Message, render, say
from edge.locale import FALLBACK, environment_language, language_from
from edge.locale.names import Glossary, say_named
from edge.records.picture_text import cjk_font, draw_lines, text_width
from edge.spc.alarm import Alarm
from edge.spc.ewma import EwmaChart
from edge.spc.pchart import PChart

log = logging.getLogger(__name__)

BEFORE, AFTER = 60, 10  # points shown around an alarm
WIDTH, HEIGHT, MARGIN, TOP, BOTTOM = 720, 320, 40, 50, 60
BLUE, RED, GREY, BLACK = (121, 78, 31), (32, 0, 176), (140, 140, 140), (0, 0, 0)
TITLE_PX, LABEL_PX = 13, 12

Image = npt.NDArray[np.uint8]


def chart_picture(
    chart: PChart | EwmaChart, alarm: Alarm, lang: str | None = "en", glossary: Glossary | None = None
) -> Image:
    """The picture of `alarm` on `chart` (BGR): the baseline's points grey, the tested points blue with
    their limits red (a step per point), the centre grey, the alarm's pattern as large red points; its
    words in `lang` (None: the locale's) where a font can write them, else English."""
    language = environment_language() if lang is None else language_from(lang)
    font = cjk_font() if language != FALLBACK else None
    if language != FALLBACK and font is None:
        _said_english_only(language)
        language = FALLBACK
    low = alarm.index - BEFORE
    if isinstance(chart, PChart):
        rows = [(p.index, p.rate, p.lower, p.upper) for p in chart.points if p.index >= low]
        learnt = [(i, rate) for i, rate in chart.baseline if i >= low]
    else:
        rows = [(p.index, p.ewma, p.lower, p.upper) for p in chart.points if p.index >= low]
        learnt = []
    image: Image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    words = _Words(font)
    said = alarm.message().params
    title = Message("spc.picture.title", {k: said[k] for k in ("chart", "rule", "unit", "index")})
    words.add(say_named(title, language, glossary), (MARGIN, 12), BLACK, TITLE_PX)
    words.add(render(said["unit"], language), (WIDTH - MARGIN - 120, HEIGHT - BOTTOM + 8), BLACK, LABEL_PX)
    words.legend(_legend(isinstance(chart, PChart), bool(learnt), language), (MARGIN, HEIGHT - 26))
    if rows:
        _plot(image, rows, learnt, alarm)
    return words.drawn(image)


def _plot(
    image: Image, rows: list[tuple[int, float, float, float]], learnt: list[tuple[int, float]], alarm: Alarm
) -> None:
    values = [v for r in rows for v in r[1:]] + [v for _, v in learnt] + [alarm.centre]
    top, bottom = max(values), min(values)
    span = (top - bottom) or 1.0
    first = min([r[0] for r in rows] + [i for i, _ in learnt]) - 0.5
    last = rows[-1][0] + 0.5

    def at(index: float, value: float) -> tuple[int, int]:
        x = MARGIN + (index - first) / (last - first) * (WIDTH - 2 * MARGIN)
        y = HEIGHT - BOTTOM - (value - bottom) / span * (HEIGHT - TOP - BOTTOM)
        return round(x), round(y)

    for value in (top, bottom):  # the scale: the highest and lowest value drawn
        cv2.putText(image, f"{value:.4g}", (2, at(first, value)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.3, BLACK)
    cv2.line(image, at(first, alarm.centre), at(last, alarm.centre), GREY, 1, cv2.LINE_AA)
    for index, _, lower, upper in rows:
        for limit in (lower, upper):
            cv2.line(image, at(index - 0.5, limit), at(index + 0.5, limit), RED, 1, cv2.LINE_AA)
    for index, value in learnt:
        cv2.circle(image, at(index, value), 3, GREY, -1, cv2.LINE_AA)
    if len(rows) > 1:
        line = np.array([at(r[0], r[1]) for r in rows], np.int32)
        cv2.polylines(image, [line], False, BLUE, 1, cv2.LINE_AA)
    pattern = range(alarm.first_index, alarm.index + 1)
    for index, value, *_ in rows:
        marked = index in pattern
        cv2.circle(image, at(index, value), 5 if marked else 2, RED if marked else BLUE, -1, cv2.LINE_AA)


def _legend(pchart: bool, baseline: bool, lang: str) -> list[tuple[str, tuple[int, int, int], str]]:
    """(words, colour, mark) per thing drawn: a line or a dot."""
    items = [
        (say("spc.legend.rate" if pchart else "spc.legend.ewma", lang), BLUE, "line"),
        (say("spc.legend.limits", lang), RED, "line"),
        (say("spc.legend.centre", lang), GREY, "line"),
    ]
    if baseline:
        items.append((say("spc.legend.baseline", lang), GREY, "dot"))
    items.append((say("spc.legend.pattern", lang), RED, "dot"))
    return items


class _Words:
    """The picture's words, written last: with OpenCV's stroke font (ASCII) or, given `font`, with Pillow."""

    def __init__(self, font: Path | None) -> None:
        self.font = font
        self.texts: list[tuple[str, tuple[int, int], tuple[int, int, int], int]] = []
        self.marks: list[tuple[tuple[int, int], tuple[int, int, int], str]] = []

    def add(self, text: str, top_left: tuple[int, int], colour: tuple[int, int, int], size: int) -> None:
        self.texts.append((text, top_left, colour, size))

    def legend(self, items: list[tuple[str, tuple[int, int, int], str]], top_left: tuple[int, int]) -> None:
        x, y = top_left
        for text, colour, mark in items:
            self.marks.append(((x, y + LABEL_PX // 2 + 1), colour, mark))
            self.add(text, (x + 22, y), BLACK, LABEL_PX)
            x += 34 + self._width(text, LABEL_PX)

    def _width(self, text: str, size: int) -> int:
        if self.font is not None:
            return text_width(text, self.font, size)
        (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size / 28, 1)
        return int(width)

    def drawn(self, image: Image) -> Image:
        for (x, y), colour, mark in self.marks:
            if mark == "line":
                cv2.line(image, (x, y), (x + 16, y), colour, 2, cv2.LINE_AA)
            else:
                cv2.circle(image, (x + 8, y), 4, colour, -1, cv2.LINE_AA)
        if self.font is None:
            for text, (x, y), colour, size in self.texts:
                cv2.putText(
                    image, text, (x, y + size), cv2.FONT_HERSHEY_SIMPLEX, size / 28, colour, 1, cv2.LINE_AA
                )
            return image
        for text, origin, colour, size in self.texts:
            ink = (colour,)
            image = draw_lines(
                image, [text], origin=origin, line_px=size + 4, inks=ink, font_path=self.font, size=size
            )
        return image


@functools.cache
def _said_english_only(language: str) -> None:
    """Once per process and language: the pictures are English for want of a font."""
    log.warning(
        "line alarm pictures in English, not %s: no font with Hangul installed (Debian fonts-noto-cjk)",
        language,
    )


def write_chart_picture(
    chart: PChart | EwmaChart,
    alarm: Alarm,
    path: Path,
    lang: str | None = "en",
    glossary: Glossary | None = None,
) -> None:
    """Write the picture as a PNG (OSError when it cannot be written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), chart_picture(chart, alarm, lang, glossary)):
        raise OSError(f"{path}: cannot write the chart picture")
