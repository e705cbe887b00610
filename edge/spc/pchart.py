"""p-charts: the share of parts that are hits (rejects, or rejects of one class) per subgroup of parts,
against a centre line from a baseline and exact probability limits, tested with the run rules.

A subgroup's count is turned into a normal-equivalent z from its exact tail probability (edge/spc/limits.py):
the binomial when the centre is given, the beta-binomial when it was learnt from the baseline (which also
carries the baseline's own uncertainty). So the run rules' zones keep their textbook tail probabilities at
any rate and subgroup size, and a short last subgroup shares them. After an alarm the chart latches: it
stays quiet until acknowledged or until the process has returned (`release` subgroups in a row inside
2 sigma), so that one shift is one alarm, not one per subgroup.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.spc.alarm import Alarm, PartKey
from edge.spc.limits import CountTails, beta_binomial_pmf, binomial_pmf
from edge.spc.rules import RuleChecker

JEFFREYS = 0.5  # the prior count added to hits and misses of a learnt baseline (Beta(1/2, 1/2))
RETURNED_Z = 2.0  # a subgroup inside this many sigma counts toward the process having returned


@dataclass(frozen=True)
class PPoint:
    """One subgroup on a p-chart: its rate, its normal-equivalent z, its limits, and the parts it holds."""

    index: int
    hits: int
    size: int
    centre: float
    z: float
    lower: float
    upper: float
    parts: tuple[PartKey, ...]

    @property
    def rate(self) -> float:
        return self.hits / self.size

    def limits(self) -> tuple[float, float]:
        return self.lower, self.upper


class PChart:
    """One p-chart fed subgroup by subgroup. Before a centre is known (`baseline_rate` not given), the first
    `baseline_subgroups` subgroups are pooled into it and not tested. `multiplicity` (Bonferroni) divides
    the tail probability of every zone among that many charts tested together (the class charts)."""

    def __init__(
        self,
        name: str,
        checker: RuleChecker,
        *,
        baseline_subgroups: int,
        baseline_rate: float | None = None,
        prior_hits: float = 0.5,
        history: int = 5000,
        release: int = 3,
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
        self.multiplicity = 1
        self.release = release
        self.latched = False
        self._calm = 0  # subgroups in a row inside RETURNED_Z while latched
        self._tails: dict[int, CountTails] = {}  # per subgroup size: the centre is fixed once known

    def learn(self, hits: int, size: int) -> None:
        """Count one subgroup into the baseline (while the centre is still being learnt)."""
        self._baseline_hits += hits
        self._baseline_parts += size
        self._subgroups += 1
        if self._subgroups >= self.baseline_subgroups:
            # A class never seen in the baseline gets a fraction of a count, not a centre of 0 (no sigma).
            hits_seen = max(float(self._baseline_hits), self.prior_hits)
            self.centre = min(hits_seen / self._baseline_parts, 1.0 - 1e-9)

    def tails(self, size: int) -> CountTails:
        """The count distribution of a subgroup of `size` (cached: sizes repeat, the centre is fixed)."""
        tails = self._tails.get(size)
        if tails is None:
            assert self.centre is not None
            if self._baseline_parts:
                # A class never seen in the baseline still gets `prior_hits` (its chart is not degenerate).
                hits = max(self._baseline_hits + JEFFREYS, self.prior_hits)
                misses = self._baseline_parts - self._baseline_hits
                pmf = beta_binomial_pmf(size, hits, misses + JEFFREYS)
            else:
                pmf = binomial_pmf(size, self.centre)
            tails = self._tails[size] = CountTails.of(pmf, self.centre)
        return tails

    def acknowledge(self) -> None:
        """Someone has seen the alarm: the next rule that fires alarms again."""
        self.latched, self._calm = False, 0

    def add(self, index: int, hits: int, size: int, parts: Sequence[PartKey]) -> list[Alarm]:
        """One subgroup (`index` counts subgroups of the whole stream); the alarms it completes."""
        if self.centre is None:
            self.baseline.append((index, hits / size))
            self.learn(hits, size)
            return []
        tails = self.tails(size)
        lower, upper = tails.limits(3.0, self.multiplicity)
        point = PPoint(
            index, hits, size, self.centre, tails.z(hits, self.multiplicity), lower, upper, tuple(parts)
        )
        self.points.append(point)
        hits_now = self.checker.add(point.z)  # always fed: a latched chart keeps its run rules' state
        if self.latched:
            self._calm = self._calm + 1 if abs(point.z) < RETURNED_Z else 0
            if self._calm >= self.release:
                self.acknowledge()  # the process has returned: the next shift alarms again
            return []
        alarms = []
        for hit in hits_now:
            pattern = list(self.points)[-hit.length :]
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
        self.latched = self.release > 0 and bool(alarms)
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
        release: int = 3,
        class_bonferroni: bool = True,
    ) -> None:
        self.subgroup = subgroup
        self.release = release
        self.class_bonferroni = class_bonferroni
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
            release=release,
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
            release=self.release,
        )
        # The class's baseline is the reject chart's: subgroups before its first appearance had none of it.
        for size in self._baseline_sizes:
            chart.learn(0, size)
        self.classes[name] = chart
        if self.class_bonferroni:  # every class chart shares one chart's false alarm rate
            for each in self.classes.values():
                each.multiplicity = len(self.classes)
        return chart

    def charts(self) -> list[PChart]:
        return [self.reject, *self.classes.values()]

    def acknowledge(self) -> None:
        for chart in self.charts():
            chart.acknowledge()
