"""Acknowledging line alarms (ISA-18.2 style: someone has seen them): which charts an acknowledgement
names, and where in the stream of parts a recorded one applies again when charts are rebuilt from records.

Standard library only: the status page and the CLI check chart names with it without loading the charts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from edge.i18n import Message
from edge.spc.alarm import PartKey

# The chart kinds (Alarm.chart before its ':'); a class chart is named class_rate:<class>.
CHART_KINDS = ("reject_rate", "class_rate", "brightness", "contrast", "sharpness", "score")


def check_chart_name(name: str) -> str:
    """`name` when it names a chart (`reject_rate`, `class_rate:scratch`) or a kind of chart (`class_rate`:
    every class); ValueError saying which names exist otherwise."""
    kind, sep, cls = name.partition(":")
    if kind in CHART_KINDS and (not sep or (kind == "class_rate" and cls)):
        return name
    raise ValueError(f"no chart {name!r}: one of {', '.join(CHART_KINDS)}, or class_rate:<class>")


def named(chart: str, wanted: Sequence[str]) -> bool:
    """Whether an acknowledgement naming `wanted` (empty: every chart) covers `chart`."""
    return not wanted or chart in wanted or chart.partition(":")[0] in wanted


@dataclass(frozen=True)
class Acknowledgement:
    """An acknowledgement as recorded: when, by whom, the charts it released, and the last part the
    charts had been fed then (None: none yet), so that a replay releases them at the same place."""

    acked_at: float
    source: str  # robot, page, cli
    user: str | None
    charts: tuple[str, ...]
    after_part: PartKey | None


def chart_word(name: str) -> Message:
    """A chart's name (or a kind named alone: `class_rate` is every class's chart) as a message."""
    kind, _, cls = name.partition(":")
    if name == "class_rate":
        return Message("alarms.every_class")
    return Message(f"spc.chart.{kind}", {"name": cls} if cls else {})


def who_word(source: str, user: str | None) -> Message:
    """Who acknowledged: the source (robot, page, cli) and, when known, the user."""
    said = Message(f"ack.source.{source}")
    return Message("ack.who", {"source": said, "user": user}) if user else said


Release = Callable[[Sequence[str]], object]  # LineCharts.acknowledge


class AckSchedule:
    """Recorded acknowledgements, applied again in the stream of parts where the live charts met them:
    `start` before the first part, `after(key)` after each part, `finish` those whose part never came."""

    def __init__(self, acks: Iterable[Acknowledgement]) -> None:
        self._first: list[Acknowledgement] = []
        self._after: dict[PartKey, list[Acknowledgement]] = {}
        for ack in acks:
            if ack.after_part is None:
                self._first.append(ack)
            else:
                self._after.setdefault(ack.after_part, []).append(ack)

    def start(self, release: Release) -> None:
        for ack in self._first:
            release(ack.charts)
        self._first = []

    def after(self, part: PartKey, release: Release) -> None:
        for ack in self._after.pop(part, ()):
            release(ack.charts)

    def finish(self, release: Release) -> None:
        # A part whose record is missing (never written): its acknowledgements still happened.
        for part in list(self._after):
            self.after(part, release)
