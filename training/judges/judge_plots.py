"""Plots of a judge evaluation (matplotlib Agg: no display, no font download): ROC curves, the escape and
overkill curve against the threshold, score histograms good vs defective, and a grid of the worst misses
with their heat maps drawn over the part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit
import matplotlib.pyplot as plt

from edge.judge.heatmaps import overlay_all
from edge.judge.inspection import Verdict
from training.judges.judge_metrics import curve
from training.judges.judge_report import JudgeReport

WORST_EACH = 8
CELL = 192


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _roc(report: JudgeReport, path: Path) -> str:
    judged = report.judged
    assert judged is not None
    truth = np.array([p.defective for p in judged.parts])
    fig, ax = plt.subplots(figsize=(5, 5))
    for figures in report.stages:
        scores = np.array([p.stage_scores[figures.stage] for p in judged.parts])
        rows = curve(scores, truth, 300)
        label = f"{figures.stage} (AUROC {figures.auroc:.3f})" if figures.auroc is not None else figures.stage
        ax.plot(rows[:, 2], 1.0 - rows[:, 1], label=label)  # false positive rate, true positive rate
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(
        xlabel="overkill rate (good parts rejected)", ylabel="1 - escape rate (defects caught)", title="ROC"
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def _escape_overkill(report: JudgeReport, path: Path) -> str:
    judged = report.judged
    assert judged is not None
    truth = np.array([p.defective for p in judged.parts])
    fig, axes = plt.subplots(1, len(report.stages), figsize=(5 * len(report.stages), 4), squeeze=False)
    for ax, figures in zip(axes[0], report.stages, strict=True):
        rows = curve([p.stage_scores[figures.stage] for p in judged.parts], truth, 300)
        ax.plot(rows[:, 0], rows[:, 1], label="escape")
        ax.plot(rows[:, 0], rows[:, 2], label="overkill")
        ax.axvline(figures.chosen.threshold, color="black", linestyle="--", label="chosen")
        ax.axhline(report.target_escape, color="red", linestyle=":", label="target escape")
        ax.set(xlabel=f"{figures.stage} threshold", ylabel="rate", title=f"{figures.stage} ({figures.kind})")
        ax.legend()
    return _save(fig, path)


def _histograms(report: JudgeReport, path: Path) -> str:
    judged = report.judged
    assert judged is not None
    fig, axes = plt.subplots(1, len(report.stages), figsize=(5 * len(report.stages), 4), squeeze=False)
    for ax, figures in zip(axes[0], report.stages, strict=True):
        good = [p.stage_scores[figures.stage] for p in judged.parts if not p.defective]
        bad = [p.stage_scores[figures.stage] for p in judged.parts if p.defective]
        bins = np.linspace(min(good + bad, default=0.0), max(good + bad, default=1.0) + 1e-9, 40)
        ax.hist(good, bins=bins, alpha=0.6, label=f"good ({len(good)})")
        ax.hist(bad, bins=bins, alpha=0.6, label=f"defective ({len(bad)})")
        ax.axvline(figures.chosen.threshold, color="black", linestyle="--", label="chosen")
        ax.set(xlabel="score", ylabel="parts", title=f"{figures.stage} scores")
        ax.legend()
    return _save(fig, path)


def _cell(part: Any, title: str) -> np.ndarray:
    image = cv2.imread(str(part.image), cv2.IMREAD_COLOR)
    if image is None:
        image = np.zeros((CELL, CELL, 3), np.uint8)
    image = overlay_all(np.asarray(image, np.uint8), part.heatmaps)
    scale = CELL / max(image.shape[:2])
    image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))))
    cell = np.full((CELL + 34, CELL, 3), 255, np.uint8)
    cell[34 : 34 + image.shape[0], : image.shape[1]] = image
    for row, text in enumerate(title.split("\n")[:2]):
        cv2.putText(
            cell, text[:30], (2, 14 + 15 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA
        )
    return cell


def _worst_misses(report: JudgeReport, path: Path) -> str:
    """Escapes with the lowest scores and overkills with the highest, heat maps drawn over them."""
    judged = report.judged
    assert judged is not None
    top = lambda p: max(p.stage_scores.values(), default=0.0)  # noqa: E731
    escapes = sorted((p for p in judged.parts if p.defective and p.verdict is Verdict.ACCEPT), key=top)
    overkills = sorted(
        (p for p in judged.parts if not p.defective and p.verdict is not Verdict.ACCEPT), key=top
    )
    chosen = [(p, "escape") for p in escapes[:WORST_EACH]] + [
        (p, "overkill") for p in overkills[::-1][:WORST_EACH]
    ]
    cells = [
        _cell(p, f"{kind}: {p.image.name}\n" + " ".join(f"{s} {v:.2f}" for s, v in p.stage_scores.items()))
        for p, kind in chosen
    ] or [_cell_blank("no misses")]
    columns = 4
    while len(cells) % columns:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.hstack(cells[i : i + columns]) for i in range(0, len(cells), columns)]
    cv2.imwrite(str(path), np.vstack(rows))
    return path.name


def _cell_blank(text: str) -> np.ndarray:
    cell = np.full((CELL + 34, CELL, 3), 255, np.uint8)
    cv2.putText(cell, text, (8, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def write_plots(report: JudgeReport, out_dir: Path) -> tuple[str, ...]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return (
        _roc(report, out_dir / "roc.png"),
        _escape_overkill(report, out_dir / "escape_overkill.png"),
        _histograms(report, out_dir / "score_histograms.png"),
        _worst_misses(report, out_dir / "worst_misses.png"),
    )
