"""An EWMA control chart for one measure: centre and sigma from a baseline window (or a given reference
centre), limits at `width` sigma of the EWMA, alarms when the EWMA leaves them.

The EWMA's sigma grows to its steady value sigma * sqrt(lambda / (2 - lambda)) as the chart starts
(the exact, time-varying form), so the first points are not judged by too-wide limits. After an alarm the
chart latches: it re-arms when acknowledged or when the EWMA has been back inside its limits for
`release` points in a row (the process returned): one alarm per excursion, not one per point.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge.spc.alarm import Alarm, PartKey
from edge.spc.config import EwmaConfig


@dataclass(frozen=True)
class EwmaPoint:
    index: int
    value: float
    ewma: float
    lower: float
    upper: float
    part: PartKey


class EwmaChart:
    """Feed (value, part) in order; `add` returns the alarm the point raises, if any."""

    def __init__(
        self,
        name: str,
        config: EwmaConfig,
        *,
        reference: float | None = None,
        sides: Literal["both", "upper"] = "both",
        history: int = 5000,
    ) -> None:
        self.name = name
        self.config = config
        self.reference = reference
        self.sides = sides
        self.points: deque[EwmaPoint] = deque(maxlen=history)
        self.centre: float | None = None
        self.sigma: float | None = None
        self._baseline: list[float] = []
        self._ewma = 0.0
        self._tested = 0
        self._count = 0
        self._armed = True
        self._inside = 0  # points in a row inside the limits while latched
        # The points that weigh most in the EWMA (about 2/lambda - 1 of them): an alarm's evidence.
        self._span = max(1, round(2.0 / config.smoothing - 1.0))

    def add(self, value: float, part: PartKey) -> Alarm | None:
        index = self._count
        self._count += 1
        if not math.isfinite(value):
            return None  # an unmeasurable frame tells nothing about drift (and is a FAULT elsewhere)
        if self.centre is None or self.sigma is None:
            self._learn(value)
            return None
        lam = self.config.smoothing
        self._tested += 1
        self._ewma = lam * value + (1.0 - lam) * self._ewma
        spread = self.sigma * math.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2 * self._tested)))
        lower, upper = self.centre - self.config.width * spread, self.centre + self.config.width * spread
        self.points.append(EwmaPoint(index, value, self._ewma, lower, upper, part))
        high, low = self._ewma > upper, self._ewma < lower and self.sides == "both"
        if not (high or low):
            self._inside += 1
            if self._inside >= self.config.release:
                self._armed = True
            return None
        self._inside = 0
        if not self._armed:
            return None
        self._armed = False
        recent = list(self.points)[-self._span :]
        return Alarm(
            rule="ewma_high" if high else "ewma_low",
            chart=self.name,
            index=index,
            values=tuple(p.ewma for p in recent),
            centre=self.centre,
            lower=lower,
            upper=upper,
            parts=tuple(p.part for p in recent),
            params={"smoothing": lam, "width": self.config.width},
        )

    @property
    def latched(self) -> bool:
        return not self._armed

    def acknowledge(self) -> None:
        """Someone has seen the alarm: the next excursion alarms again."""
        self._armed, self._inside = True, 0

    def latch(self) -> None:
        """In alarm without a point of its own: a restarted alarms worker's image chart whose alarm the
        records hold (edge/spc/restore.py). Released as any latch: acknowledged, or inside for `release`."""
        self._armed, self._inside = False, 0

    def _learn(self, value: float) -> None:
        self._baseline.append(value)
        if len(self._baseline) < self.config.baseline:
            return
        values = np.asarray(self._baseline, dtype=np.float64)
        centre = float(values.mean()) if self.reference is None else float(self.reference)
        sigma = float(values.std(ddof=1))
        self.sigma = max(sigma, self.config.min_sigma, self.config.min_sigma_ratio * abs(centre))
        self.centre = centre
        self._ewma = centre
        self._baseline = []
