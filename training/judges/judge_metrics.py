"""Part-level figures of a judge from its scores: AUROC, escape and overkill at a threshold, the threshold
for a target escape rate, and the escape/overkill curve.

Escape = a defective part passed (score below the threshold); overkill = a good part rejected (score at or
above it). The threshold chosen for a target escape rate gives the lowest overkill the target allows, and
among those the fewest escapes on the split (halfway between the scores around it, as the anomaly trainer
places its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    escape_rate: float
    overkill_rate: float
    escapes: int
    overkills: int


def auroc(scores: npt.ArrayLike, defective: npt.ArrayLike) -> float | None:
    """Area under the ROC curve: the probability that a defective part outscores a good one, ties counted
    half (Mann-Whitney, exact); None when the split lacks good or defective parts."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(defective, dtype=bool)
    good, bad = np.sort(s[~y]), s[y]
    if good.size == 0 or bad.size == 0:
        return None
    below = np.searchsorted(good, bad, side="left")  # good parts each defective part outscores
    tied = np.searchsorted(good, bad, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (good.size * bad.size))


def at_threshold(scores: npt.ArrayLike, defective: npt.ArrayLike, threshold: float) -> OperatingPoint:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(defective, dtype=bool)
    escapes = int(np.count_nonzero(y & (s < threshold)))
    overkills = int(np.count_nonzero(~y & (s >= threshold)))
    return OperatingPoint(
        threshold, escapes / max(1, int(y.sum())), overkills / max(1, int((~y).sum())), escapes, overkills
    )


def choose_threshold(scores: npt.ArrayLike, defective: npt.ArrayLike, target_escape: float) -> OperatingPoint:
    """The highest threshold whose escape rate meets the target (lowest overkill); with no defective part,
    the one just above every good part's score."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(defective, dtype=bool)
    bad = np.sort(s[y])
    if bad.size == 0:
        return at_threshold(s, y, float(np.nextafter(s.max(), np.inf)) if s.size else 1.0)
    allowed = int(np.floor(target_escape * bad.size + 1e-9))  # defective parts that may pass
    threshold = float(bad[allowed]) if allowed < bad.size else float(np.nextafter(bad[-1], np.inf))
    # Down to halfway above the highest good score below it: the same overkill, never more escapes (the
    # highest threshold alone could let defective parts pass that no good part required), room both ways.
    good_below = s[~y & (s < threshold)]
    if good_below.size:
        threshold = (float(good_below.max()) + threshold) / 2.0
    return at_threshold(s, y, threshold)


def curve(scores: npt.ArrayLike, defective: npt.ArrayLike, points: int = 200) -> npt.NDArray[np.float64]:
    """(threshold, escape rate, overkill rate) rows over the scores' range, for the plots and the report."""
    s = np.asarray(scores, dtype=np.float64)
    low, high = (float(s.min()), float(s.max())) if s.size else (0.0, 1.0)
    thresholds = np.linspace(low, high + 1e-9, points)
    points_at = [at_threshold(s, defective, t) for t in thresholds]
    rows = [(p.threshold, p.escape_rate, p.overkill_rate) for p in points_at]
    return np.asarray(rows, dtype=np.float64)
