"""The evaluation of a judge or a chain of judges on one split: per stage AUROC, escape and overkill at the
threshold in use and at the one chosen for a target escape rate; the chain's own escape and overkill, its
misses per defect class; JSON and markdown, and a table across sites.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import atomic_write_text
from edge.judge.inspection import Verdict
from edge.modelstore.card import Thresholds, read_card, write_card
from training.judges.judge_metrics import OperatingPoint, at_threshold, auroc, choose_threshold
from training.judges.judge_scores import JudgedSplit


@dataclass(frozen=True)
class StageFigures:
    stage: str
    kind: str
    model: dict[str, str]
    auroc: float | None
    in_use: OperatingPoint | None  # classify/anomaly: at the stage's threshold (detect: its rules' verdicts)
    chosen: OperatingPoint


@dataclass(frozen=True)
class ChainTuning:
    """Thresholds of the chain's classify/anomaly stages chosen together: the lowest overkill of the whole
    chain (any stage rejects) with its escape rate at or under the target; detect stages keep their rules."""

    thresholds: dict[str, float]
    escape_rate: float
    overkill_rate: float


@dataclass(frozen=True)
class JudgeReport:
    data: dict[str, Any]
    target_escape: float
    stages: tuple[StageFigures, ...]
    chain: OperatingPoint  # at the thresholds in use; threshold field unused (0)
    chain_escapes: tuple[str, ...]
    chain_overkills: tuple[str, ...]
    per_class: dict[str, dict[str, int]]  # class -> parts, escaped
    seconds: float
    plots: tuple[str, ...] = ()
    judged: JudgedSplit | None = field(default=None, repr=False, compare=False)
    tuned: ChainTuning | None = None

    def to_json(self) -> dict[str, Any]:
        def point(p: OperatingPoint | None) -> dict[str, float] | None:
            if p is None:
                return None
            return {
                "threshold": round(p.threshold, 6),
                "escape_rate": round(p.escape_rate, 6),
                "overkill_rate": round(p.overkill_rate, 6),
                "escapes": p.escapes,
                "overkills": p.overkills,
            }

        return {
            "data": self.data,
            "target_escape_rate": self.target_escape,
            "stages": [
                {
                    "stage": s.stage,
                    "kind": s.kind,
                    "model": s.model,
                    "auroc": s.auroc,
                    "at_threshold_in_use": point(s.in_use),
                    "chosen_for_target": point(s.chosen),
                }
                for s in self.stages
            ],
            "chain": {
                "escape_rate": self.chain.escape_rate,
                "overkill_rate": self.chain.overkill_rate,
                "escapes": list(self.chain_escapes),
                "overkills": list(self.chain_overkills),
                "per_class": self.per_class,
            },
            "chain_tuned_for_target": None
            if self.tuned is None
            else {
                "thresholds": {k: round(v, 6) for k, v in self.tuned.thresholds.items()},
                "escape_rate": self.tuned.escape_rate,
                "overkill_rate": self.tuned.overkill_rate,
            },
            "seconds": round(self.seconds, 1),
            "plots": list(self.plots),
        }


def build_report(judged: JudgedSplit, target_escape: float) -> JudgeReport:
    parts = judged.parts
    truth = [p.defective for p in parts]
    figures = []
    for stage in judged.stages:
        scores = [p.stage_scores[stage] for p in parts]
        threshold = judged.thresholds[stage]
        in_use = (
            at_threshold(scores, truth, threshold) if threshold is not None else _from_verdicts(judged, stage)
        )
        figures.append(
            StageFigures(
                stage,
                judged.kinds[stage],
                judged.models[stage],
                auroc(scores, truth),
                in_use,
                choose_threshold(scores, truth, target_escape),
            )
        )
    rejected = [p.verdict is not Verdict.ACCEPT for p in parts]
    escapes = tuple(p.image.name for p, r in zip(parts, rejected, strict=True) if p.defective and not r)
    overkills = tuple(p.image.name for p, r in zip(parts, rejected, strict=True) if not p.defective and r)
    n_bad, n_good = sum(truth), len(truth) - sum(truth)
    chain = OperatingPoint(
        0.0, len(escapes) / max(1, n_bad), len(overkills) / max(1, n_good), len(escapes), len(overkills)
    )
    per_class: dict[str, dict[str, int]] = {}
    for part, was_rejected in zip(parts, rejected, strict=True):
        for name in part.classes:
            entry = per_class.setdefault(name, {"parts": 0, "escaped": 0})
            entry["parts"] += 1
            entry["escaped"] += int(not was_rejected)
    split = judged.split
    data = {"dir": str(split.data_dir), "split": split.name, "images": len(parts), "defective": n_bad,
            "good": n_good, "truth": split.truth_source}  # fmt: skip
    tuned = tune_chain(judged, target_escape) if len(judged.stages) > 1 else None
    return JudgeReport(
        data,
        target_escape,
        tuple(figures),
        chain,
        escapes,
        overkills,
        per_class,
        judged.seconds,
        (),
        judged,
        tuned,
    )


def tune_chain(judged: JudgedSplit, target_escape: float) -> ChainTuning | None:
    """Joint thresholds for up to two classify/anomaly stages (every pair of their scores tried); None
    when the chain has none, more than two, or no pair meets the target."""
    tunable = [s for s in judged.stages if judged.thresholds[s] is not None]
    if not tunable or len(tunable) > 2:
        return None
    truth = np.array([p.defective for p in judged.parts])
    fixed = np.array(
        [
            any(p.stage_verdicts[s] is not Verdict.ACCEPT for s in judged.stages if s not in tunable)
            for p in judged.parts
        ]
    )
    scores = [np.array([p.stage_scores[s] for p in judged.parts]) for s in tunable]
    candidates = [np.append(np.unique(s), np.inf) for s in scores]
    first = scores[0][None, :] >= candidates[0][:, None]  # (thresholds, parts)
    second = (
        scores[1][None, :] >= candidates[1][:, None] if len(scores) > 1 else np.zeros((1, len(truth)), bool)
    )
    best: tuple[float, float, tuple[int, int]] | None = None
    n_bad, n_good = max(1, int(truth.sum())), max(1, int((~truth).sum()))
    for j in range(second.shape[0]):
        rejected = first | second[j][None, :] | fixed[None, :]
        escape = ((~rejected) & truth[None, :]).sum(axis=1) / n_bad
        overkill = (rejected & ~truth[None, :]).sum(axis=1) / n_good
        ok = np.flatnonzero(escape <= target_escape + 1e-12)
        if ok.size:
            i = int(ok[np.argmin(overkill[ok])])
            if best is None or overkill[i] < best[1]:
                best = (float(escape[i]), float(overkill[i]), (i, j))
    if best is None:
        return None
    i, j = best[2]
    thresholds = {tunable[0]: float(candidates[0][i])}
    if len(tunable) > 1:
        thresholds[tunable[1]] = float(candidates[1][j])
    return ChainTuning(thresholds, best[0], best[1])


def _from_verdicts(judged: JudgedSplit, stage: str) -> OperatingPoint:
    """A detect stage's operating point from its rules' own verdicts (its thresholds are per class)."""
    bad = [p for p in judged.parts if p.defective]
    good = [p for p in judged.parts if not p.defective]
    escapes = sum(p.stage_verdicts[stage] is Verdict.ACCEPT for p in bad)
    overkills = sum(p.stage_verdicts[stage] is not Verdict.ACCEPT for p in good)
    return OperatingPoint(
        math.nan, escapes / max(1, len(bad)), overkills / max(1, len(good)), escapes, overkills
    )


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f} %"


def markdown(reports: Sequence[JudgeReport]) -> str:
    """One table: per site, each stage's AUROC and operating points, then the chain."""
    lines = [
        "| data | stage | AUROC | in use: escape / overkill | chosen threshold | chosen: escape / overkill |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        site = (
            f"{Path(r.data['dir']).name}/{r.data['split']} ({r.data['defective']} bad, {r.data['good']} good)"
        )
        for s in r.stages:
            used = f"{_pct(s.in_use.escape_rate)} / {_pct(s.in_use.overkill_rate)}" if s.in_use else "-"
            roc = "-" if s.auroc is None else f"{s.auroc:.3f}"
            chosen = f"{_pct(s.chosen.escape_rate)} / {_pct(s.chosen.overkill_rate)}"
            lines.append(
                f"| {site} | {s.stage} ({s.kind}) | {roc} | {used} | {s.chosen.threshold:.4g} | {chosen} |"
            )
        lines.append(
            f"| {site} | **chain** | | {_pct(r.chain.escape_rate)} / {_pct(r.chain.overkill_rate)} | | |"
        )
        if r.tuned is not None:
            chosen = ", ".join(f"{k} {v:.4g}" for k, v in r.tuned.thresholds.items())
            rates = f"{_pct(r.tuned.escape_rate)} / {_pct(r.tuned.overkill_rate)}"
            lines.append(f"| {site} | **chain, thresholds tuned together** | | | {chosen} | {rates} |")
    misses = [
        f"- {Path(r.data['dir']).name}: "
        + ", ".join(f"{c} {v['escaped']}/{v['parts']}" for c, v in sorted(r.per_class.items()))
        for r in reports
        if r.per_class
    ]
    if misses:
        lines += ["", "Escapes per defect class (escaped/parts):", *misses]
    return "\n".join(lines) + "\n"


def write_report(report: JudgeReport, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", markdown([report]))


def write_stage_thresholds(report: JudgeReport, model_dirs: dict[str, Path]) -> list[str]:
    """Each classify/anomaly stage's threshold into its card (written atomically); what changed. A lone
    stage gets its own choice; a chain's stages the thresholds tuned together for the whole chain."""
    written = []
    tuned = report.tuned
    for figures in report.stages:
        folder = model_dirs.get(figures.stage)
        if figures.kind == "detect" or folder is None:
            continue
        if tuned is not None and figures.stage in tuned.thresholds:
            threshold, escape, overkill = (
                tuned.thresholds[figures.stage],
                tuned.escape_rate,
                tuned.overkill_rate,
            )
            role = "chain"
        else:
            threshold, escape, overkill = (
                figures.chosen.threshold,
                figures.chosen.escape_rate,
                figures.chosen.overkill_rate,
            )
            role = "alone"
        if not np.isfinite(threshold):
            continue  # this stage rejects nothing in the tuned chain: its card keeps its threshold
        card = read_card(folder)
        thresholds = Thresholds(**{**card.thresholds.model_dump(), "score": round(threshold, 6)})
        part_level = {
            "split": report.data["split"],
            "target_escape_rate": report.target_escape,
            "measured": role,
            "escape_rate": escape,
            "overkill_rate": overkill,
            "auroc": figures.auroc,
        }
        metrics = {**card.metrics, "part_level": part_level}
        write_card(folder, card.model_copy(update={"thresholds": thresholds, "metrics": metrics}))
        written.append(f"{figures.stage}: score {threshold:.4g} ({role}) -> {folder / 'card.json'}")
    return written
