"""p-charts: the share of parts that are hits (rejects, or rejects of one class) per subgroup of parts,
against a centre line from a baseline and 3-sigma limits from the binomial, tested with the run rules.

sigma of a subgroup of n parts at centre p is sqrt(p (1 - p) / n); the lower limit is clipped at 0 and
the upper at 1. Points are standardised before the rules see them, so a short last subgroup still counts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.spc.alarm import Alarm, PartKey
from edge.spc.rules import RuleChecker


@dataclass(frozen=True)
class PPoint:
    """One subgroup on a p-chart: its rate, its limits, and the parts it holds."""

    index: int
    hits: int
    size: int
    centre: float
    sigma: float
    parts: tuple[PartKey, ...]

    @property
    def rate(self) -> float:
        return self.hits / self.size

    @property
    def z(self) -> float:
        return (self.rate - self.centre) / self.sigma if self.sigma > 0 else 0.0

    def limits(self, width: float = 3.0) -> tuple[float, float]:
        return max(0.0, self.centre - width * self.sigma), min(1.0, self.centre + width * self.sigma)


class PChart:
    """One p-chart fed subgroup by subgroup. Before a centre is known (`baseline_rate` not given), the first
    `baseline_subgroups` subgroups are pooled into it and not tested."""

    def __init__(
        self,
        name: str,
        checker: RuleChecker,
        *,
        baseline_subgroups: int,
        baseline_rate: float | None = None,
        prior_hits: float = 0.5,
        history: int = 5000,
    ) -> None:
        self.name = name
        self.checker = checker
        self.baseline_subgroups = baseline_subgroups
        self.centre = baseline_rate
        self.prior_hits = prior_hits
        self.points: deque[PPoint] = deque(maxlen=history)
        self.baseline: list[tuple[int, float]] = []  # (index, rate) of the learnt subgroups, for the picture
        self._baseline_hits = 0
        self._baseline_parts = 0
        self._subgroups = 0

    def learn(self, hits: int, size: int) -> None:
        """Count one subgroup into the baseline (while the centre is still being learnt)."""
        self._baseline_hits += hits
        self._baseline_parts += size
        self._subgroups += 1
        if self._subgroups >= self.baseline_subgroups:
            # A class never seen in the baseline gets a fraction of a count, not a centre of 0 (no sigma).
            hits_seen = max(float(self._baseline_hits), self.prior_hits)
            self.centre = min(hits_seen / self._baseline_parts, 1.0 - 1e-9)

    def add(self, index: int, hits: int, size: int, parts: Sequence[PartKey]) -> list[Alarm]:
        """One subgroup (`index` counts subgroups of the whole stream); the alarms it completes."""
        if self.centre is None:
            self.baseline.append((index, hits / size))
            self.learn(hits, size)
            return []
        sigma = math.sqrt(self.centre * (1.0 - self.centre) / size)
        point = PPoint(index, hits, size, self.centre, sigma, tuple(parts))
        self.points.append(point)
        alarms = []
        for hit in self.checker.add(point.z):
            pattern = list(self.points)[-hit.length :]
            lower, upper = point.limits()
            alarms.append(
                Alarm(
                    rule=hit.rule,
                    chart=self.name,
                    index=index,
                    values=tuple(p.rate for p in pattern),
                    centre=self.centre,
                    lower=lower,
                    upper=upper,
                    parts=tuple(key for p in pattern for key in p.parts),
                    params=dict(hit.params),
                )
            )
        return alarms


class RejectCharts:
    """The reject-rate chart and one chart per reject class, fed part by part; subgroups close every
    `subgroup` parts. A class first seen after the baseline gets its chart then, its centre from the
    baseline's parts (`prior_hits` of them)."""

    def __init__(
        self,
        subgroup: int,
        baseline_subgroups: int,
        *,
        baseline_rate: float | None = None,
        rules: Iterable[str],
        class_rules: Iterable[str],
        run_length: int = 9,
        trend_length: int = 6,
        upper_only: bool = False,
        class_upper_only: bool = True,
        prior_hits: float = 0.5,
        history: int = 5000,
    ) -> None:
        self.subgroup = subgroup
        self.baseline_subgroups = baseline_subgroups
        self._checker_args = (run_length, trend_length, upper_only)
        self._class_rules = tuple(class_rules)
        self._class_checker_args = (run_length, trend_length, class_upper_only)
        self._prior = prior_hits
        self._history = history
        self.reject = PChart(
            "reject_rate",
            RuleChecker(rules, *self._checker_args),
            baseline_subgroups=baseline_subgroups,
            baseline_rate=baseline_rate,
            prior_hits=prior_hits,
            history=history,
        )
        self.classes: dict[str, PChart] = {}
        self._parts: list[PartKey] = []
        self._causes: list[str | None] = []  # per part: a reject's class ("" none), or None
        self._closed = 0
        self._baseline_sizes: list[int] = []  # the baseline's subgroup sizes, for a class first seen later

    def add(self, part: PartKey, rejected: bool, cause: str | None) -> list[Alarm]:
        """One part (in order); `cause` is the class that decided its reject (None: none)."""
        self._parts.append(part)
        self._causes.append((cause or "") if rejected else None)
        if len(self._parts) < self.subgroup:
            return []
        return self.close()

    def close(self) -> list[Alarm]:
        """Close the subgroup in progress (a short last one at the end of a replay); its alarms."""
        if not self._parts:
            return []
        parts, causes = tuple(self._parts), self._causes
        self._parts, self._causes = [], []
        index = self._closed
        self._closed += 1
        size = len(parts)
        rejects = sum(c is not None for c in causes)
        alarms = self.reject.add(index, rejects, size, parts)
        for name in sorted({c for c in causes if c} | set(self.classes)):
            chart = self.classes.get(name) or self._new_class_chart(name)
            alarms += chart.add(index, sum(c == name for c in causes), size, parts)
        if index < self.baseline_subgroups:
            self._baseline_sizes.append(size)  # after the classes: a new class learns this one by itself
        return alarms

    def _new_class_chart(self, name: str) -> PChart:
        chart = PChart(
            f"class_rate:{name}",
            RuleChecker(self._class_rules, *self._class_checker_args),
            baseline_subgroups=self.baseline_subgroups,
            prior_hits=self._prior,
            history=self._history,
        )
        # The class's baseline is the reject chart's: subgroups before its first appearance had none of it.
        for size in self._baseline_sizes:
            chart.learn(0, size)
        self.classes[name] = chart
        return chart
