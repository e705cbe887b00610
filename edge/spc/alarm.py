"""A line alarm as language-neutral data: rule, chart, point index, values, limits and the parts behind it.

`message()` turns it into an `edge.i18n.Message`; the words live in the catalog, never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.i18n import Message

PartKey = tuple[int, int]  # (boot_id, seq): how a part is named everywhere


@dataclass(frozen=True)
class Alarm:
    """One rule firing on one chart. `index` is the subgroup (p-charts) or the point (EWMA charts) where the
    pattern completed; `values` are the plotted values of the points in the pattern, oldest first."""

    rule: str  # a run rule (edge.spc.config.ALL_RULES), or ewma_high / ewma_low
    chart: str  # reject_rate, class_rate:<class>, brightness, contrast, sharpness, score
    index: int
    values: tuple[float, ...]
    centre: float
    lower: float
    upper: float
    parts: tuple[PartKey, ...]  # the parts of the points in the pattern
    params: dict[str, Any] = field(default_factory=dict, hash=False)  # the rule's own: n, side, direction

    @property
    def first_index(self) -> int:
        return self.index - len(self.values) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "chart": self.chart,
            "index": self.index,
            "values": [round(v, 6) for v in self.values],
            "centre": round(self.centre, 6),
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
            "parts": [list(p) for p in self.parts],
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alarm:
        """The alarm `to_json` wrote (a stored or published one)."""
        return cls(
            rule=str(data["rule"]),
            chart=str(data["chart"]),
            index=int(data["index"]),
            values=tuple(float(v) for v in data["values"]),
            centre=float(data["centre"]),
            lower=float(data["lower"]),
            upper=float(data["upper"]),
            parts=tuple((int(p[0]), int(p[1])) for p in data["parts"]),
            params=dict(data.get("params", {})),
        )

    def message(self) -> Message:
        """The alarm as one sentence-to-be (`spc.alarm`), its chart and rule as messages of their own."""
        kind, _, name = self.chart.partition(":")
        chart = Message(f"spc.chart.{kind}", {"name": name} if name else {})
        first, last = (self.parts[0], self.parts[-1]) if self.parts else ((0, 0), (0, 0))
        unit = Message("spc.unit.subgroup" if self.chart_is_pchart else "spc.unit.part")
        return Message(
            "spc.alarm",
            {
                "chart": chart,
                "rule": Message(f"spc.rule.{self.rule}", _worded(self.params)),
                "unit": unit,
                "index": self.index,
                "value": self.values[-1],
                "centre": self.centre,
                "lower": self.lower,
                "upper": self.upper,
                "first": f"{first[0]}:{first[1]}",
                "last": f"{last[0]}:{last[1]}",
                "parts": len(self.parts),
            },
        )

    @property
    def chart_is_pchart(self) -> bool:
        return self.chart == "reject_rate" or self.chart.startswith("class_rate:")


def _worded(params: dict[str, Any]) -> dict[str, Any]:
    """A side or direction code (above, rising...) as a message: said in the reader's language."""
    return {k: Message(f"spc.{k}.{v}") if k in ("side", "direction") else v for k, v in params.items()}
