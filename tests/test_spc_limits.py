"""Exact probability limits (edge/spc/limits.py) against scipy.stats: the binomial and beta-binomial tails,
the normal-equivalent z of a count, and the limits drawn half a count inside the first alarming count."""

from __future__ import annotations

import pytest
from scipy import stats  # type: ignore[import-untyped]

from edge.spc.limits import CountTails, beta_binomial_pmf, binomial_pmf

THREE_SIGMA_TAIL = stats.norm.sf(3.0)


@pytest.mark.parametrize(("n", "p"), [(100, 0.55), (100, 0.083), (25, 0.02), (1000, 0.3), (10, 0.1)])
def test_binomial_tails_match_scipy(n: int, p: float) -> None:
    tails = CountTails.of(binomial_pmf(n, p))
    for k in range(n + 1):
        assert tails.below_or_at[k] == pytest.approx(stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-300)
        assert tails.at_or_above[k] == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-9, abs=1e-300)
    assert tails.mean == pytest.approx(n * p)


@pytest.mark.parametrize(("n", "a", "b"), [(100, 550.5, 450.5), (100, 0.5, 1000.5), (25, 3.5, 97.5)])
def test_beta_binomial_tails_match_scipy(n: int, a: float, b: float) -> None:
    tails = CountTails.of(beta_binomial_pmf(n, a, b))
    for k in range(n + 1):
        expected = stats.betabinom.sf(k - 1, n, a, b)
        if expected < 1e-4:
            # scipy's far tail loses digits at a, b near 1,000 (mpmath at 40 digits agrees with ours, not
            # with it, below 1e-4); the alarms live at 1e-3.
            continue
        assert tails.at_or_above[k] == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize(("n", "p"), [(100, 0.55), (100, 0.083), (100, 0.117), (50, 0.35)])
def test_a_count_is_beyond_3_sigma_exactly_when_its_tail_is_below_the_normal_one(n: int, p: float) -> None:
    tails = CountTails.of(binomial_pmf(n, p))
    lower, upper = tails.limits(3.0)
    for k in range(n + 1):
        z = tails.z(k)
        beyond_above = stats.binom.sf(k - 1, n, p) <= THREE_SIGMA_TAIL and k > n * p
        beyond_below = stats.binom.cdf(k, n, p) <= THREE_SIGMA_TAIL and k < n * p
        assert (z >= 3.0) == beyond_above, k
        assert (z <= -3.0) == beyond_below, k
        assert (k / n > upper) == beyond_above and (k / n < lower) == beyond_below, k
    # The first alarming count is scipy's quantile: the limit lies half a count below it.
    first = int(stats.binom.isf(THREE_SIGMA_TAIL, n, p)) + 1
    assert upper == pytest.approx((first - 0.5) / n)


def test_the_skew_is_gone_the_upper_tail_of_a_small_rate_is_at_most_the_normal_one() -> None:
    # chip at 5/60 in subgroups of 100: the normal approximation's limit was crossed with p = 0.0037.
    n, p = 100, 5 / 60
    tails = CountTails.of(binomial_pmf(n, p))
    _, upper = tails.limits(3.0)
    crossed = stats.binom.sf(int(upper * n), n, p)
    normal_upper = p + 3 * (p * (1 - p) / n) ** 0.5
    assert crossed <= THREE_SIGMA_TAIL < stats.binom.sf(int(normal_upper * n), n, p)


def test_bonferroni_divides_the_tail_among_the_charts() -> None:
    tails = CountTails.of(binomial_pmf(100, 0.1))
    assert tails.limits(3.0, multiplicity=3)[1] > tails.limits(3.0)[1]
    k = int(tails.limits(3.0)[1] * 100) + 1
    assert tails.z(k, multiplicity=3) < tails.z(k)
