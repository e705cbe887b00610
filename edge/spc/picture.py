"""A control chart picture of one alarm, drawn with OpenCV (always on the appliance; matplotlib is not):
the chart's points around the alarm, its centre line and limits, the alarm's pattern in red.

The live alarms worker writes one per alarm under the records folder, as the alarm's evidence. Its only
words are the chart's and the rule's codes (language-neutral, as in the records);
`lineside records alarms --png` draws the worded matplotlib version.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.spc.alarm import Alarm
from edge.spc.ewma import EwmaChart
from edge.spc.pchart import PChart

BEFORE, AFTER = 60, 10  # points shown around an alarm
WIDTH, HEIGHT, MARGIN = 720, 300, 40
BLUE, RED, GREY, BLACK = (121, 78, 31), (32, 0, 176), (140, 140, 140), (0, 0, 0)


def chart_picture(chart: PChart | EwmaChart, alarm: Alarm) -> npt.NDArray[np.uint8]:
    """The picture of `alarm` on `chart` (BGR): the baseline's points grey, the tested points blue with
    their limits red (a step per point), the centre grey, the alarm's pattern as large red points."""
    low = alarm.index - BEFORE
    if isinstance(chart, PChart):
        rows = [(p.index, p.rate, p.lower, p.upper) for p in chart.points if p.index >= low]
        learnt = [(i, rate) for i, rate in chart.baseline if i >= low]
    else:
        rows = [(p.index, p.ewma, p.lower, p.upper) for p in chart.points if p.index >= low]
        learnt = []
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    label = f"{alarm.chart} {alarm.rule} @ {alarm.index}"
    cv2.putText(image, label, (MARGIN, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BLACK, 1, cv2.LINE_AA)
    if not rows:
        return image
    values = [v for r in rows for v in r[1:]] + [v for _, v in learnt] + [alarm.centre]
    top, bottom = max(values), min(values)
    span = (top - bottom) or 1.0
    first = min([r[0] for r in rows] + [i for i, _ in learnt]) - 0.5
    last = rows[-1][0] + 0.5

    def at(index: float, value: float) -> tuple[int, int]:
        x = MARGIN + (index - first) / (last - first) * (WIDTH - 2 * MARGIN)
        y = HEIGHT - MARGIN - (value - bottom) / span * (HEIGHT - 2 * MARGIN - 20)
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
    return image


def write_chart_picture(chart: PChart | EwmaChart, alarm: Alarm, path: Path) -> None:
    """Write the picture as a PNG (OSError when it cannot be written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), chart_picture(chart, alarm)):
        raise OSError(f"{path}: cannot write the chart picture")
