"""Percentile summaries of timing samples, and the ratio of a figure to the model's floor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import LinesideError


@dataclass(frozen=True)
class Spread:
    """How a timed step spread over `count` samples, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    def ratio(self, floor_ms: float) -> tuple[float, float]:
        """(p50, p99) of this step, each divided by the floor (a p50 in ms)."""
        return self.p50_ms / floor_ms, self.p99_ms / floor_ms


def spread(samples_ms: Sequence[float], what: str) -> Spread:
    """Summarise samples; raise LinesideError naming `what` when there are none (never a zero figure)."""
    if len(samples_ms) == 0:
        raise LinesideError(f"bench: no samples for {what}")
    values = np.asarray(samples_ms, dtype=np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise LinesideError(f"bench: {what} has negative or non-finite samples")
    # "lower"/"higher" keep each percentile an observed sample, so p50 <= p99 holds exactly.
    p50 = float(np.percentile(values, 50, method="lower"))
    p99 = float(np.percentile(values, 99, method="higher"))
    return Spread(
        count=len(values),
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=float(values.mean()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
    )
