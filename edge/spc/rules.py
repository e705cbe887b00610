"""Western Electric / Nelson run rules on standardised points (z = (value - centre) / sigma).

Standardising first lets subgroups of different sizes (whose sigma differs) share one set of zones. Each
rule fires on the point that completes its pattern, and that point must itself be part of the pattern
(beyond the zone, on the side). A rule that fired is not tested again until its window has moved past
the points of that firing, so one long run gives one alarm per window of points, not one per point.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from edge.spc.config import ALL_RULES


@dataclass(frozen=True)
class RuleHit:
    """`rule` fired on point `index`; the pattern is the `length` points ending there."""

    rule: str
    index: int
    length: int
    params: dict[str, object]


class RuleChecker:
    """Feed standardised points one at a time; each `add` returns the rules that fired on that point."""

    def __init__(
        self,
        rules: Iterable[str] = ALL_RULES,
        run_length: int = 9,
        trend_length: int = 6,
        upper_only: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        unknown = set(self.rules) - set(ALL_RULES)
        if unknown:
            raise ValueError(f"unknown run rule(s) {sorted(unknown)}; known: {list(ALL_RULES)}")
        self.run_length = run_length
        self.trend_length = trend_length
        self.upper_only = upper_only
        window = max(5, run_length, trend_length)
        self._z: deque[float] = deque(maxlen=window)  # only the newest points: bounded for the live line
        self._count = 0
        self._quiet_until: dict[str, int] = {}  # rule -> first index it may fire on again

    def add(self, z: float) -> list[RuleHit]:
        self._z.append(z)
        index = self._count
        self._count += 1
        hits = []
        for rule in self.rules:
            if index < self._quiet_until.get(rule, 0):
                continue
            hit = self._test(rule, index)
            if hit is not None:
                self._quiet_until[rule] = index + hit.length
                hits.append(hit)
        return hits

    def _test(self, rule: str, index: int) -> RuleHit | None:
        z = list(self._z)
        if rule == "beyond_3sigma":
            return self._zone(rule, index, z, window=1, need=1, limit=3.0)
        if rule == "2of3_beyond_2sigma":
            return self._zone(rule, index, z, window=3, need=2, limit=2.0)
        if rule == "4of5_beyond_1sigma":
            return self._zone(rule, index, z, window=5, need=4, limit=1.0)
        if rule == "run_one_side":
            return self._run(index, z)
        return self._trend(index, z)

    def _sides(self, last: float) -> tuple[int, ...]:
        side = 1 if last > 0 else -1 if last < 0 else 0
        if side == 0 or (self.upper_only and side < 0):
            return ()
        return (side,)

    def _zone(
        self, rule: str, index: int, z: list[float], *, window: int, need: int, limit: float
    ) -> RuleHit | None:
        if len(z) < need:  # the first points of a chart: fewer than `window` may already hold `need`
            return None
        recent = z[-window:]
        for side in self._sides(recent[-1]):
            beyond = [side * v > limit for v in recent]
            if beyond[-1] and sum(beyond) >= need:
                return RuleHit(rule, index, window, {"side": _side_word(side)})
        return None

    def _run(self, index: int, z: list[float]) -> RuleHit | None:
        n = self.run_length
        if len(z) < n:
            return None
        recent = z[-n:]
        for side in self._sides(recent[-1]):
            # A point exactly on the centre line belongs to neither side: it breaks the run.
            if all(side * v > 0 for v in recent):
                return RuleHit("run_one_side", index, n, {"n": n, "side": _side_word(side)})
        return None

    def _trend(self, index: int, z: list[float]) -> RuleHit | None:
        n = self.trend_length
        if len(z) < n:
            return None
        recent = z[-n:]
        steps = [b - a for a, b in itertools.pairwise(recent)]
        # Ties break a trend (Nelson): counts in subgroups are often equal, and equal is not rising.
        if all(s > 0 for s in steps):
            return RuleHit("trend", index, n, {"n": n, "direction": "rising"})
        if not self.upper_only and all(s < 0 for s in steps):
            return RuleHit("trend", index, n, {"n": n, "direction": "falling"})
        return None


def _side_word(side: int) -> str:
    return "above" if side > 0 else "below"
