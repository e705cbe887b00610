"""Exact probability limits for a count of hits in a subgroup: the binomial at a known centre, the
beta-binomial (the binomial averaged over what the baseline leaves unknown) at a learnt one.

The normal approximation p +- 3 sqrt(p (1 - p) / n) is skewed at small rates (chip at 8 % in subgroups of
100 crossed its upper limit with probability 0.0037, not 0.00135), and a centre learnt from 1,000 parts is
itself off by a third of a subgroup's sigma. Here a count becomes a normal-equivalent z from its exact tail
probability, so the run rules' zones (1, 2, 3 sigma) keep their textbook tail probabilities. The standard
library only (math.lgamma, statistics.NormalDist): the appliance does not carry scipy for one quantile;
tests/test_spc_limits.py checks these tails against scipy.stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from statistics import NormalDist

_NORMAL = NormalDist()
_Z_CAP = 8.0  # beyond this the tail probability is below double precision's use; the rules need no more


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def binomial_pmf(n: int, p: float) -> list[float]:
    """P(X = k), k = 0..n, for X ~ Binomial(n, p), 0 < p < 1."""
    lp, lq = math.log(p), math.log1p(-p)
    return [math.exp(_log_comb(n, k) + k * lp + (n - k) * lq) for k in range(n + 1)]


def beta_binomial_pmf(n: int, a: float, b: float) -> list[float]:
    """P(X = k), k = 0..n, for X ~ BetaBinomial(n, a, b): the next subgroup's count when the rate is only
    known as Beta(a, b) (a = hits + prior, b = misses + prior of the baseline)."""
    base = _log_beta(a, b)
    return [math.exp(_log_comb(n, k) + _log_beta(k + a, n - k + b) - base) for k in range(n + 1)]


@dataclass(frozen=True)
class CountTails:
    """Tail probabilities of one subgroup size's count distribution, and the z each count stands for."""

    n: int
    mean: float
    below_or_at: tuple[float, ...]  # P(X <= k)
    at_or_above: tuple[float, ...]  # P(X >= k)

    @classmethod
    def of(cls, pmf: list[float], centre: float | None = None) -> CountTails:
        """The tails of `pmf`; `centre` (a rate) is the chart's centre line, which decides a point's side
        (default: the distribution's mean). The beta-binomial's mean sits a little off the baseline's
        rate (its prior's half counts): a count at the baseline's rate is on the centre line, not below."""
        total = sum(pmf)
        pmf = [q / total for q in pmf]  # the sums of a few thousand exp() drift by 1e-15; keep them proper
        # The upper tail is summed from the top: small tails keep their precision.
        below, above = list(accumulate(pmf)), list(accumulate(pmf[::-1]))[::-1]
        n = len(pmf) - 1
        mean = sum(k * q for k, q in enumerate(pmf)) if centre is None else n * centre
        return cls(n, mean, tuple(min(1.0, x) for x in below), tuple(min(1.0, x) for x in above))

    def z(self, hits: int, multiplicity: int = 1) -> float:
        """The normal-equivalent z of `hits`: above the mean, the z whose upper tail is P(X >= hits); below,
        the z whose lower tail is P(X <= hits); 0 at the mean. Conservative for a discrete count (its tail
        is never more probable than the normal's at that z). `multiplicity` k multiplies the tail first
        (Bonferroni: k charts tested together share the tail probability of one)."""
        if abs(hits - self.mean) < 1e-9:
            return 0.0
        if hits > self.mean:
            tail = min(0.5, self.at_or_above[hits] * multiplicity)
            # Just above the mean the tail can exceed one half: still above the centre, so a tiny z > 0.
            return max(1e-6, min(_Z_CAP, -_NORMAL.inv_cdf(max(tail, 1e-300))))
        tail = min(0.5, self.below_or_at[hits] * multiplicity)
        return min(-1e-6, max(-_Z_CAP, _NORMAL.inv_cdf(max(tail, 1e-300))))

    def limits(self, width: float = 3.0, multiplicity: int = 1) -> tuple[float, float]:
        """The limits as rates: a point is beyond them (its z past +-`width`) exactly when its rate is below
        the lower or above the upper. They lie half a count inside the first alarming count, so that the
        chart draws them between the counts; 0 and 1 when no count can alarm on that side."""
        tail = _NORMAL.cdf(-width) / multiplicity
        lower = max((k for k in range(self.n + 1) if self.below_or_at[k] <= tail), default=None)
        upper = min((k for k in range(self.n + 1) if self.at_or_above[k] <= tail), default=None)
        return (
            0.0 if lower is None else (lower + 0.5) / self.n,
            1.0 if upper is None else (upper - 0.5) / self.n,
        )
