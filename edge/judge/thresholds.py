"""Per-class reject thresholds chosen for the line: meet a target escape rate at the lowest overkill.

Escape = a defective part accepted (no detection at or above its class threshold); overkill = a good
part rejected. Thresholds are chosen on a labelled split (never the held-out test split), from the
detections the runtime's own detector reports at a low confidence floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.judge.inspection import Detection

LOWEST = 0.01  # no threshold goes below this: a floor of 0 would reject on noise
STEPS_PER_UNIT = 10_000  # thresholds are multiples of 1e-4 (cards store them rounded)


@dataclass(frozen=True)
class ScoredPart:
    """One labelled image: is it defective, and the best confidence per class the detector gave it."""

    name: str
    defective: bool
    best: Mapping[str, float]

    @classmethod
    def from_detections(cls, name: str, defective: bool, detections: Sequence[Detection]) -> ScoredPart:
        best: dict[str, float] = {}
        for det in detections:
            best[det.class_name] = max(best.get(det.class_name, 0.0), det.confidence)
        return cls(name, defective, best)


@dataclass(frozen=True)
class Operating:
    """Thresholds and what they give on the parts they were chosen on."""

    thresholds: dict[str, float]
    escape_rate: float
    overkill_rate: float
    escapes: tuple[str, ...]
    overkills: tuple[str, ...]


def _scores(parts: Sequence[ScoredPart], classes: Sequence[str]) -> np.ndarray:
    return np.array([[p.best.get(c, 0.0) for c in classes] for p in parts], dtype=np.float64).reshape(
        len(parts), len(classes)
    )


def evaluate(parts: Sequence[ScoredPart], thresholds: Mapping[str, float]) -> Operating:
    """Escape and overkill of these thresholds on these parts."""
    classes = list(thresholds)
    scores = _scores(parts, classes)
    limits = np.array([thresholds[c] for c in classes])
    hits = np.asarray(scores >= limits).any(axis=1) if classes else np.zeros(len(parts), dtype=bool)
    rejected = [bool(r) for r in np.atleast_1d(hits)]
    escapes = tuple(p.name for p, r in zip(parts, rejected, strict=True) if p.defective and not r)
    overkills = tuple(p.name for p, r in zip(parts, rejected, strict=True) if r and not p.defective)
    defective = sum(p.defective for p in parts)
    return Operating(
        thresholds=dict(thresholds),
        escape_rate=len(escapes) / max(1, defective),
        overkill_rate=len(overkills) / max(1, len(parts) - defective),
        escapes=escapes,
        overkills=overkills,
    )


def next_step_above(score: float) -> float:
    """The smallest multiple of STEP strictly above `score` (in integer steps: no float drift)."""
    return (math.floor(score * STEPS_PER_UNIT + 1e-9) + 1) / STEPS_PER_UNIT


def choose_thresholds(
    parts: Sequence[ScoredPart], classes: Sequence[str], target_escape: float = 0.0, ceiling: float = 0.9
) -> Operating:
    """Per-class thresholds with escape rate <= target (if reachable) and the lowest overkill found.

    Start every class at LOWEST (fewest escapes), then greedily raise the one class threshold whose
    raise removes the most overkill while the escape rate stays within target; stop when none helps.
    Candidate values are just above the class's scores on good parts: only those can change overkill.
    """
    thresholds = dict.fromkeys(classes, LOWEST)
    best = evaluate(parts, thresholds)
    if best.escape_rate > target_escape:
        return best  # not reachable even at the floor: report it, the caller decides
    good_scores = {c: sorted({p.best.get(c, 0.0) for p in parts if not p.defective}) for c in classes}
    while best.overkill_rate > 0:
        move: Operating | None = None
        for cls in classes:
            for score in good_scores[cls]:
                candidate = next_step_above(score)
                if candidate <= thresholds[cls] or candidate > ceiling:
                    continue
                trial = evaluate(parts, {**thresholds, cls: round(candidate, 6)})
                if trial.escape_rate > target_escape:
                    break  # raising further only lets more defective parts through
                if move is None or trial.overkill_rate < move.overkill_rate:
                    move = trial
        if move is None or move.overkill_rate >= best.overkill_rate:
            break
        best, thresholds = move, dict(move.thresholds)
    return best
