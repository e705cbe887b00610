"""Evaluation plots with matplotlib's Agg backend (no display, no font download): PR curves, the
escape-vs-overkill curve, the confusion matrix and a grid of the worst misses with their boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit
import matplotlib.pyplot as plt

from edge.judge.thresholds import ScoredPart
from edge.judge.thresholds import evaluate as operating_point
from training.metrics import ClassStats, pr_curve

if TYPE_CHECKING:
    from training.evalreport import EvalReport, ScoredImage

WORST_EACH = 8  # escapes and overkills shown in the grid
SWEEP = np.round(np.linspace(0.01, 0.99, 99), 4)


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def pr_curves(classes: Sequence[str], stats: Sequence[ClassStats], path: Path) -> str:
    """Precision against recall at IoU 0.5, one line per class, AP50 in the legend."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, s in zip(classes, stats, strict=True):
        if s.n_truth == 0:
            continue
        recall, precision = pr_curve(s.tp[:, :1], s.scores, s.n_truth)
        envelope = np.maximum.accumulate(precision[::-1, 0])[::-1]
        ax.plot(np.r_[0.0, recall[:, 0]], np.r_[1.0, envelope], label=f"{name} AP50 {s.ap[0]:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curve (IoU 0.5)")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def escape_overkill(report: EvalReport, parts: Sequence[ScoredPart], path: Path) -> str:
    """Part escape and overkill as one threshold for every class sweeps 0.01..0.99, with the chosen
    per-class operating point and the card's."""
    curve = np.array([_rates(parts, report.classes, t) for t in SWEEP])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(curve[:, 1], curve[:, 0], ".-", ms=3, label="one threshold for all classes")
    ax.plot([report.chosen.overkill_rate], [report.chosen.escape_rate], "r*", ms=12, label="chosen per class")
    ax.plot([report.card.overkill_rate], [report.card.escape_rate], "ks", ms=7, label="card thresholds")
    ax.axhline(
        report.target_escape, color="r", lw=0.8, ls="--", label=f"target escape {report.target_escape}"
    )
    ax.set(xlabel="overkill rate (good parts rejected)", ylabel="escape rate (defective parts accepted)")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title="escape vs overkill")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _rates(parts: Sequence[ScoredPart], classes: Sequence[str], threshold: float) -> tuple[float, float]:
    op = operating_point(parts, dict.fromkeys(classes, float(threshold)))
    return op.escape_rate, op.overkill_rate


def confusion(report: EvalReport, path: Path) -> str:
    """Box confusion matrix at the chosen thresholds (IoU 0.5), background included."""
    matrix = np.array(report.confusion)
    labels = [*report.classes, "background"]
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="truth", title="confusion at chosen thresholds")
    return _save(fig, path)


def _drawn(item: ScoredImage, classes: Sequence[str], thresholds: dict[str, float]) -> np.ndarray:
    image = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    if image is None:
        image = np.zeros((64, 64, 3), dtype=np.uint8)
    thick = max(1, round(max(image.shape[:2]) / 300))
    for box in item.truth.boxes:
        x1, y1, x2, y2 = (round(v) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), (0, 200, 0), thick)
    for c, box, score in zip(
        item.predicted.classes, item.predicted.boxes, item.predicted.scores, strict=True
    ):
        limit = thresholds[classes[c]]
        if score < min(limit, 0.5) * 0.5:
            continue  # weak noise would hide the picture; near-threshold boxes stay, dashed by colour
        colour = (0, 0, 255) if score >= limit else (0, 165, 255)
        x1, y1, x2, y2 = (round(v) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick)
        cv2.putText(image, f"{classes[c]} {score:.2f}", (x1, max(10, y1 - 3)), 0, 0.4 * thick, colour, thick)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def worst_misses(report: EvalReport, path: Path) -> str | None:
    """Escaped parts (weakest evidence first) then overkills (strongest false evidence first), as a grid.

    Green: truth; red: detections at or above threshold; orange: below it. None when nothing went wrong.
    """
    by_name = {s.image.name: s for s in report.images}
    thresholds = report.chosen.thresholds
    strength = {s.image.name: _strongest(s, report.classes, thresholds) for s in report.images}
    escapes = sorted(report.chosen.escapes, key=lambda n: strength[n])[:WORST_EACH]
    overkills = sorted(report.chosen.overkills, key=lambda n: -strength[n])[:WORST_EACH]
    chosen = [(n, "escape") for n in escapes] + [(n, "overkill") for n in overkills]
    if not chosen:
        return None
    cols = min(4, len(chosen))
    rows = -(-len(chosen) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, kind) in zip(axes.flat, chosen, strict=False):
        ax.imshow(_drawn(by_name[name], report.classes, thresholds))
        ax.set_title(f"{kind}: {name}", fontsize=7)
    return _save(fig, path)


def _strongest(item: ScoredImage, classes: Sequence[str], thresholds: dict[str, float]) -> float:
    """The largest score / threshold ratio of the image's detections (how near it came to rejecting)."""
    ratios = [
        s / thresholds[classes[c]] for c, s in zip(item.predicted.classes, item.predicted.scores, strict=True)
    ]
    return max(ratios, default=0.0)


def write_all(
    report: EvalReport, out_dir: Path, stats: Sequence[ClassStats], parts: Sequence[ScoredPart]
) -> tuple[str, ...]:
    """Every plot into `out_dir`; the file names written."""
    names = [
        pr_curves(report.classes, stats, out_dir / "pr_curves.png"),
        escape_overkill(report, parts, out_dir / "escape_overkill.png"),
        confusion(report, out_dir / "confusion.png"),
    ]
    misses = worst_misses(report, out_dir / "worst_misses.png")
    return tuple(names + ([misses] if misses else []))
