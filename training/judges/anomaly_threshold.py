"""The anomaly model's reject threshold, chosen on held-out parts, and its validation metrics.

With defective parts in the validation split: the highest image-score threshold whose part escape rate
meets the target (the lowest overkill there). With good parts only: a quantile of their scores times a
margin. Either way a threshold that rejects every good part is refused, never shipped (anomalib #3357).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from training.judges.judge_metrics import auroc as judge_auroc

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ThresholdChoice:
    """A part is rejected at score >= `score`; how it was chosen (recorded in the card)."""

    score: float
    source: Literal["validation", "good_quantile"]
    quantile: float | None = None
    margin: float | None = None


def _escape_threshold(good: Scores, defective: Scores, target_escape: float) -> float:
    """The highest threshold letting at most floor(target * defects) defective parts pass, placed halfway
    to the highest good score below it (same escapes and overkill on val, room on either side)."""
    ordered = np.sort(defective)
    allowed = min(math.floor(target_escape * len(ordered) + 1e-9), len(ordered) - 1)
    threshold = float(ordered[allowed])
    below = good[good < threshold]
    return (float(below.max()) + threshold) / 2 if below.size else threshold


def choose_threshold(
    good: Scores,
    defective: Scores,
    *,
    target_escape: float,
    quantile: float,
    margin: float,
    where: str,
) -> ThresholdChoice:
    """The threshold for these validation scores; LinesideError (naming `where`) when it would reject
    every good part, or there is no good part to check it on."""
    good = np.asarray(good, np.float64)
    defective = np.asarray(defective, np.float64)
    if not good.size:
        raise LinesideError(f"{where}: no good parts held out to check the anomaly threshold on")
    if defective.size:
        choice = ThresholdChoice(_escape_threshold(good, defective, target_escape), "validation")
    else:
        level = float(np.quantile(good, quantile))
        choice = ThresholdChoice(level * margin, "good_quantile", quantile, margin)
    if bool((good >= choice.score).all()):
        raise LinesideError(
            f"{where}: the {choice.source} threshold {choice.score:.4g} would reject all {good.size} good"
            " parts: refused (the good training images do not describe these good parts)"
        )
    return choice


def auroc(good: Scores, defective: Scores) -> float | None:
    """Probability that a defective part outscores a good one (ties count half); None without both."""
    scores = np.concatenate([np.asarray(good, np.float64), np.asarray(defective, np.float64)])
    return judge_auroc(scores, np.arange(len(scores)) >= len(good))


def val_metrics(
    good: Scores, defective: Scores, choice: ThresholdChoice, target_escape: float
) -> dict[str, object]:
    """The card's metrics: AUROC, part escape and overkill rates at the threshold, counts."""
    good = np.asarray(good, np.float64)
    defective = np.asarray(defective, np.float64)
    area = auroc(good, defective)
    metrics: dict[str, object] = {
        "split": "val",
        "good_parts": int(good.size),
        "defective_parts": int(defective.size),
        "threshold": round(choice.score, 6),
        "overkill_rate": round(float((good >= choice.score).mean()), 4),
        "good_score_max": round(float(good.max()), 6),
    }
    if defective.size:
        metrics |= {
            "auroc": None if area is None else round(area, 4),
            "target_escape_rate": target_escape,
            "escape_rate": round(float((defective < choice.score).mean()), 4),
        }
    return metrics
