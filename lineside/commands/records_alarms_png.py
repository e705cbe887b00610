"""Control chart pictures for `lineside records alarms --png`: one PNG per alarm, the chart's points around
it, the centre line and limits, the alarm's pattern in red. matplotlib (Agg, its own DejaVu font).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edge.errors import LinesideError
from edge.i18n import Message, render
from edge.spc.alarm import Alarm
from edge.spc.ewma import EwmaChart
from edge.spc.pchart import PChart
from edge.spc.replay import LineCharts

BEFORE, AFTER = 60, 10  # points shown around an alarm


def chart_of(charts: LineCharts, name: str) -> PChart | EwmaChart | None:
    """The chart an alarm came from, by its name."""
    if name == "reject_rate":
        return charts.rejects.reject
    if name.startswith("class_rate:"):
        return charts.rejects.classes.get(name.partition(":")[2])
    if name == "score":
        return charts.score.chart
    return charts.image.charts.get(name)


def write_pngs(charts: LineCharts, folder: Path) -> list[Path]:
    """One picture per alarm in `folder` (created); the paths written."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on the appliance; before pyplot is imported
        import matplotlib.pyplot as plt
    except ImportError:
        raise LinesideError("--png needs matplotlib: pip install 'lineside[charts]'") from None
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, alarm in enumerate(charts.alarms, start=1):
        chart = chart_of(charts, alarm.chart)
        if chart is None:
            continue
        figure, axes = plt.subplots(figsize=(9, 4), dpi=100)
        try:
            _draw(axes, chart, alarm)
            axes.set_title(render(alarm.message()), fontsize=7, wrap=True)
            figure.tight_layout()
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"alarm-{number:03d}-{alarm.chart}-{alarm.rule}")
            path = folder / f"{name}.png"
            figure.savefig(path)
            written.append(path)
        finally:
            plt.close(figure)
    return written


def _draw(axes: Any, chart: PChart | EwmaChart, alarm: Alarm) -> None:
    from matplotlib.ticker import MaxNLocator  # matplotlib is there: write_pngs checked

    low, high = alarm.index - BEFORE, alarm.index + AFTER
    pattern = set(range(alarm.first_index, alarm.index + 1))
    if isinstance(chart, PChart):
        points = [p for p in chart.points if low <= p.index <= high]
        xs = [p.index for p in points]
        limits = [p.limits() for p in points]
        axes.plot(xs, [p.rate for p in points], "o-", color="#1f4e79", markersize=3, label="rate")
        axes.step(xs, [lim[1] for lim in limits], where="mid", color="#b00020", linewidth=1, label="UCL")
        axes.step(xs, [lim[0] for lim in limits], where="mid", color="#b00020", linewidth=1, label="LCL")
        axes.axhline(alarm.centre, color="#555555", linewidth=1, label="centre")
        learnt = [b for b in chart.baseline if low <= b[0] <= high]
        if learnt:
            axes.plot(*zip(*learnt, strict=True), "o", color="#9aa7b4", markersize=3, label="baseline")
        marked = [(p.index, p.rate) for p in points if p.index in pattern]
        axes.set_xlabel(render(Message("spc.unit.subgroup")))
    else:
        epoints = [p for p in chart.points if low <= p.index <= high]
        xs = [p.index for p in epoints]
        axes.plot(xs, [p.value for p in epoints], ".", color="#9aa7b4", markersize=3, label="value")
        axes.plot(xs, [p.ewma for p in epoints], "-", color="#1f4e79", label="EWMA")
        axes.plot(xs, [p.upper for p in epoints], color="#b00020", linewidth=1, label="limits")
        axes.plot(xs, [p.lower for p in epoints], color="#b00020", linewidth=1)
        axes.axhline(alarm.centre, color="#555555", linewidth=1, label="centre")
        marked = [(p.index, p.ewma) for p in epoints if p.index in pattern]
        axes.set_xlabel(render(Message("spc.unit.part")))
    if marked:
        axes.plot([m[0] for m in marked], [m[1] for m in marked], "o", color="#d62728", markersize=5)
    kind, _, name = alarm.chart.partition(":")
    axes.set_ylabel(render(Message(f"spc.chart.{kind}", {"name": name} if name else {})), fontsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=7, loc="best")
    axes.grid(alpha=0.3)
