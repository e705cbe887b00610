"""Control chart pictures for `lineside records alarms --png`: one PNG per alarm, the chart's points around
it, the centre line and limits, the alarm's pattern in red; its title, axis labels and legend in the
reader's language. matplotlib (Agg): English in its own DejaVu font; Korean in a CJK font from the system
(Debian fonts-noto-cjk, found as the evidence pictures find it), never downloaded; without one, English.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edge.errors import LinesideError
from edge.i18n import Message, render, say
from edge.locale import FALLBACK
from edge.locale.names import Glossary, say_named
from edge.records.evidence import picture_language
from edge.records.picture_text import cjk_font
from edge.spc.alarm import Alarm
from edge.spc.ewma import EwmaChart
from edge.spc.pchart import PChart
from edge.spc.replay import LineCharts

BEFORE, AFTER = 60, 10  # points shown around an alarm


def write_pngs(
    charts: LineCharts, folder: Path, lang: str | None = "en", glossary: Glossary | None = None
) -> list[Path]:
    """One picture per alarm in `folder` (created), its words in `picture_language(lang)` with the plant's
    names from `glossary`; the paths written."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on the appliance; before pyplot is imported
        import matplotlib.pyplot as plt
        from matplotlib.font_manager import FontProperties
    except ImportError:
        raise LinesideError("--png needs matplotlib: pip install 'lineside[charts]'") from None
    language = picture_language(lang)
    font = cjk_font() if language != FALLBACK else None
    words = _Words(language, glossary, None if font is None else FontProperties(fname=str(font)))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, alarm in enumerate(charts.alarms, start=1):
        chart = charts.chart(alarm.chart)
        if chart is None:
            continue
        figure, axes = plt.subplots(figsize=(9, 4), dpi=100)
        try:
            _draw(axes, chart, alarm, words)
            axes.set_title(words.named(alarm.message()), wrap=True, **words.font(7))
            figure.tight_layout()
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"alarm-{number:03d}-{alarm.chart}-{alarm.rule}")
            path = folder / f"{name}.png"
            figure.savefig(path)
            written.append(path)
        finally:
            plt.close(figure)
    return written


class _Words:
    """The pictures' words in one language, and the font that writes them (None: matplotlib's own)."""

    def __init__(self, lang: str, glossary: Glossary | None, font: Any) -> None:
        self.lang, self.glossary, self.font_properties = lang, glossary, font

    def say(self, message_id: str) -> str:
        return say(message_id, self.lang)

    def named(self, message: Message) -> str:
        return say_named(message, self.lang, self.glossary)

    def font(self, size: float, key: str = "fontproperties") -> dict[str, Any]:
        """The keyword arguments that set a text's font and size (a legend takes its font as `prop`)."""
        if self.font_properties is None:
            return {"fontsize": size}
        properties = self.font_properties.copy()
        properties.set_size(size)
        return {key: properties}


def _draw(axes: Any, chart: PChart | EwmaChart, alarm: Alarm, words: _Words) -> None:
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: write_pngs checked

    low, high = alarm.index - BEFORE, alarm.index + AFTER
    pattern = set(range(alarm.first_index, alarm.index + 1))
    centre = words.say("spc.legend.centre")
    if isinstance(chart, PChart):
        points = [p for p in chart.points if low <= p.index <= high]
        xs = [p.index for p in points]
        limits = [p.limits() for p in points]
        rate, upper, lower = (words.say(f"spc.legend.{k}") for k in ("rate", "upper", "lower"))
        axes.plot(xs, [p.rate for p in points], "o-", color="#1f4e79", markersize=3, label=rate)
        axes.step(xs, [lim[1] for lim in limits], where="mid", color="#b00020", linewidth=1, label=upper)
        axes.step(xs, [lim[0] for lim in limits], where="mid", color="#b00020", linewidth=1, label=lower)
        axes.axhline(alarm.centre, color="#555555", linewidth=1, label=centre)
        learnt = [b for b in chart.baseline if low <= b[0] <= high]
        if learnt:
            baseline = words.say("spc.legend.baseline")
            axes.plot(*zip(*learnt, strict=True), "o", color="#9aa7b4", markersize=3, label=baseline)
        marked = [(p.index, p.rate) for p in points if p.index in pattern]
        axes.set_xlabel(render(Message("spc.unit.subgroup"), words.lang), **words.font(10))
    else:
        epoints = [p for p in chart.points if low <= p.index <= high]
        xs = [p.index for p in epoints]
        value, ewma, limits_word = (words.say(f"spc.legend.{k}") for k in ("value", "ewma", "limits"))
        axes.plot(xs, [p.value for p in epoints], ".", color="#9aa7b4", markersize=3, label=value)
        axes.plot(xs, [p.ewma for p in epoints], "-", color="#1f4e79", label=ewma)
        axes.plot(xs, [p.upper for p in epoints], color="#b00020", linewidth=1, label=limits_word)
        axes.plot(xs, [p.lower for p in epoints], color="#b00020", linewidth=1)
        axes.axhline(alarm.centre, color="#555555", linewidth=1, label=centre)
        marked = [(p.index, p.ewma) for p in epoints if p.index in pattern]
        axes.set_xlabel(render(Message("spc.unit.part"), words.lang), **words.font(10))
    if marked:
        pattern_word = words.say("spc.legend.pattern")
        axes.plot(
            [m[0] for m in marked],
            [m[1] for m in marked],
            "o",
            color="#d62728",
            markersize=5,
            label=pattern_word,
        )
    kind, _, name = alarm.chart.partition(":")
    axis = Message(f"spc.chart.{kind}", {"name": name} if name else {})
    axes.set_ylabel(words.named(axis), **words.font(8))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="best", **words.font(7, key="prop"))
    axes.grid(alpha=0.3)
