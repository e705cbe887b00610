"""What one evaluation measured: the scored images and the report, with its JSON form.

Its own module so that the evaluation and its plots both read it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.judge.thresholds import Operating
from training.metrics import ImageBoxes


@dataclass(frozen=True)
class ScoredImage:
    """One evaluated image: its truth, the detector's boxes at the floor, and the part-level truth."""

    image: Path
    defective: bool
    truth: ImageBoxes
    predicted: ImageBoxes


@dataclass(frozen=True)
class EvalReport:
    """Everything one evaluation measured; `to_json()` is the report file."""

    model: dict[str, Any]
    data: dict[str, Any]
    classes: tuple[str, ...]
    map50: float
    map50_95: float
    per_class: dict[str, dict[str, float]]
    target_escape: float
    chosen: Operating
    card: Operating
    confusion: list[list[int]]
    timing: dict[str, float]
    conf_floor: float
    plots: tuple[str, ...] = ()
    images: tuple[ScoredImage, ...] = field(default=(), repr=False, compare=False)

    @property
    def escape_rate(self) -> float:
        return self.chosen.escape_rate

    @property
    def overkill_rate(self) -> float:
        return self.chosen.overkill_rate

    @property
    def target_met(self) -> bool:
        return self.chosen.escape_rate <= self.target_escape

    def to_json(self) -> dict[str, Any]:
        report: dict[str, Any] = clean_json(
            {
                "model": self.model,
                "data": self.data,
                "classes": list(self.classes),
                "conf_floor": self.conf_floor,
                "box": {"mAP50": self.map50, "mAP50-95": self.map50_95, "per_class": self.per_class},
                "part_level": {
                    "target_escape_rate": self.target_escape,
                    "target_met": self.target_met,
                    "chosen": _operating_json(self.chosen),
                    "card": _operating_json(self.card),
                },
                "confusion": {
                    "labels": [*self.classes, "background"],
                    "rows_truth_cols_predicted": self.confusion,
                },
                "timing": self.timing,
                "plots": list(self.plots),
            }
        )
        return report


def _operating_json(op: Operating) -> dict[str, Any]:
    return {
        "thresholds": {k: round(v, 4) for k, v in op.thresholds.items()},
        "escape_rate": op.escape_rate,
        "overkill_rate": op.overkill_rate,
        "escapes": list(op.escapes),
        "overkills": list(op.overkills),
    }


def clean_json(value: Any) -> Any:
    """JSON-safe: NaN becomes null, floats are rounded to 6 places."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value
