"""Evaluate an exported model through the runtime's own detector: box mAP, per-class precision/recall,
part-level escape and overkill, thresholds chosen for a target escape rate, plots and a JSON report.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from edge.judge.detector.detector import Detector
from edge.judge.inspection import Detection
from edge.judge.thresholds import ScoredPart, choose_thresholds
from edge.judge.thresholds import evaluate as operating_point
from edge.modelstore.card import ModelCard, Thresholds, load_verified, read_card, write_card
from edge.sources.config import SourceConfig
from edge.sources.imagecheck import read_image_file
from training.evaldata import Split, check_classes, read_split, read_truth, split_fingerprint
from training.evalreport import EvalReport, ScoredImage
from training.metrics import IOU_THRESHOLDS, ClassStats, ImageBoxes, class_stats, confusion_matrix, mean_ap

EVAL_FLOOR = 0.001  # like Ultralytics val: the PR curves need the weak detections too
PROGRESS_SECONDS = 2.0


def _as_boxes(detections: Sequence[Detection]) -> ImageBoxes:
    return ImageBoxes.of(
        [d.class_id for d in detections], [d.box for d in detections], [d.confidence for d in detections]
    )


def score_images(
    detector: Detector, split: Split, conf_floor: float, progress: bool = True
) -> tuple[list[ScoredImage], dict[str, float]]:
    """Every image of the split through `detector.detect` at `conf_floor`, with its truth; and timings."""
    source_cfg = SourceConfig(kind="folder", path=split.data_dir / "images" / split.name)
    n_classes = len(detector.card.classes)
    scored: list[ScoredImage] = []
    stage_ms = {"preprocess": 0.0, "infer": 0.0, "decode": 0.0}
    start = last_report = time.perf_counter()
    total = len(split.items)
    for i, item in enumerate(split.items, 1):
        image = read_image_file(item.image, source_cfg)
        result = detector.detect(image, conf_floor=conf_floor)
        for stage, ms in result.timings_ms.items():
            stage_ms[stage] += ms
        truth = read_truth(item.label, image.shape[1], image.shape[0], n_classes)
        scored.append(ScoredImage(item.image, item.defective, truth, _as_boxes(result.detections)))
        now = time.perf_counter()
        if progress and (now - last_report >= PROGRESS_SECONDS or i == total):
            last_report = now
            rate = i / max(now - start, 1e-9)
            print(f"eval {split.name}: {i}/{total} images, {rate:.1f} images/s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    timing = {"seconds": seconds, "images_per_s": total / max(seconds, 1e-9)}
    timing.update({f"mean_{k}_ms": v / total for k, v in stage_ms.items()})
    return scored, timing


def _per_class(
    classes: Sequence[str], stats: Sequence[ClassStats], thresholds: dict[str, float]
) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for name, s in zip(classes, stats, strict=True):
        ap = s.ap
        precision, recall = s.at_threshold(thresholds[name])
        table[name] = {
            "truth_boxes": s.n_truth,
            "ap50": float(ap[0]),
            "ap50_95": float(np.nanmean(ap)) if s.n_truth else float("nan"),
            "threshold": thresholds[name],
            "precision": precision,
            "recall": recall,
        }
    return table


def scored_parts(scored: Sequence[ScoredImage], classes: Sequence[str]) -> list[ScoredPart]:
    """Part-level view: per image, its truth and the best score per class."""
    parts = []
    for s in scored:
        best: dict[str, float] = {}
        for c, score in zip(s.predicted.classes, s.predicted.scores, strict=True):
            best[classes[c]] = max(best.get(classes[c], 0.0), float(score))
        parts.append(ScoredPart(s.image.name, s.defective, best))
    return parts


def evaluate(
    model_dir: Path,
    data_dir: Path,
    split: str = "val",
    target_escape: float = 0.01,
    out_dir: Path | None = None,
    *,
    conf_floor: float = EVAL_FLOOR,
    plots: bool = True,
    progress: bool = True,
) -> EvalReport:
    """Run the model in `model_dir` over `data_dir`'s split through edge and measure it.

    With `out_dir`, writes report.json, report.md and (with `plots`) the PNG plots there.
    """
    if not 0.0 <= target_escape <= 1.0:
        raise LinesideError(f"target escape rate {target_escape} is not in [0, 1]")
    card, _ = load_verified(model_dir)
    data = read_split(Path(data_dir), split)
    check_classes(data, card.classes)
    detector = Detector(model_dir)
    scored, timing = score_images(detector, data, conf_floor, progress)
    stats = class_stats([s.truth for s in scored], [s.predicted for s in scored], len(card.classes))
    map50, map50_95 = mean_ap(stats)
    parts = scored_parts(scored, card.classes)
    chosen = choose_thresholds(parts, card.classes, target_escape=target_escape)
    card_thresholds = {c: card.thresholds.per_class.get(c, 0.5) for c in card.classes}
    by_id = {i: chosen.thresholds[c] for i, c in enumerate(card.classes)}
    matrix = confusion_matrix(
        [s.truth for s in scored], [s.predicted for s in scored], len(card.classes), by_id
    )
    report = EvalReport(
        model=_model_info(model_dir, card),
        data={
            "dir": str(Path(data_dir).resolve()),
            "split": split,
            "images": len(scored),
            "defective_parts": sum(s.defective for s in scored),
            "good_parts": sum(not s.defective for s in scored),
            "part_truth_from": data.truth_source,
            "fingerprint": split_fingerprint(data),
        },
        classes=card.classes,
        map50=map50,
        map50_95=map50_95,
        per_class=_per_class(card.classes, stats, chosen.thresholds),
        target_escape=target_escape,
        chosen=chosen,
        card=operating_point(parts, card_thresholds),
        confusion=matrix.tolist(),
        timing=timing,
        conf_floor=conf_floor,
        images=tuple(scored),
    )
    if out_dir is not None:
        report = write_report(report, Path(out_dir), stats, parts, plots)
    return report


def _model_info(model_dir: Path, card: ModelCard) -> dict[str, Any]:
    return {
        "dir": str(Path(model_dir).resolve()),
        "name": card.name,
        "version": card.version,
        "sha256": card.sha256,
        "precision": card.precision,
        "input": f"{card.input.width}x{card.input.height} {card.input.color}",
        "iou_nms": card.thresholds.iou,
        "iou_thresholds": [round(float(t), 2) for t in IOU_THRESHOLDS],
    }


def write_report(
    report: EvalReport, out_dir: Path, stats: Sequence[ClassStats], parts: Sequence[ScoredPart], plots: bool
) -> EvalReport:
    """Plots (matplotlib Agg), report.json and report.md into `out_dir`; the report naming its plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names: tuple[str, ...] = ()
    if plots:
        from training import plots as plotting  # matplotlib only when plots are asked for

        names = plotting.write_all(report, out_dir, stats, parts)
    from dataclasses import replace

    report = replace(report, plots=names)
    atomic_write_text(out_dir / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", markdown([report]))
    return report


def write_thresholds(model_dir: Path, report: EvalReport) -> ModelCard:
    """Store the report's chosen thresholds (and its part-level numbers) in the model's card, atomically.

    Refused when the target escape rate was not met, or the model is not the one evaluated.
    """
    card, _ = load_verified(model_dir)
    if card.sha256 != report.model["sha256"]:
        raise LinesideError(
            f"{model_dir}: model sha256 differs from the evaluated one; thresholds not written"
        )
    if not report.target_met:
        raise LinesideError(
            f"{model_dir}: escape rate {report.escape_rate:.4f} misses the target {report.target_escape};"
            " thresholds not written"
        )
    per_class = {name: round(value, 4) for name, value in report.chosen.thresholds.items()}
    thresholds = Thresholds(confidence=min(per_class.values()), iou=card.thresholds.iou, per_class=per_class)
    part_level = {
        "split": f"{report.data['dir']} {report.data['split']}",
        "data_fingerprint": report.data["fingerprint"],
        "target_escape_rate": report.target_escape,
        "escape_rate": round(report.escape_rate, 4),
        "overkill_rate": round(report.overkill_rate, 4),
        "defective_parts": report.data["defective_parts"],
        "good_parts": report.data["good_parts"],
    }
    updated = card.model_copy(
        update={"thresholds": thresholds, "metrics": {**card.metrics, "part_level": part_level}}
    )
    write_card(model_dir, ModelCard.model_validate(updated.model_dump(by_alias=True)))
    return read_card(model_dir)


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def markdown(reports: Sequence[EvalReport]) -> str:
    """One side-by-side table, a column per data set: mAP, escape, overkill, recall per class."""
    heads = [f"{Path(r.data['dir']).name}/{r.data['split']}" for r in reports]
    rows: list[tuple[str, list[str]]] = [
        ("images", [str(r.data["images"]) for r in reports]),
        ("mAP50", [_fmt(r.map50) for r in reports]),
        ("mAP50-95", [_fmt(r.map50_95) for r in reports]),
        ("escape (chosen)", [_fmt(r.escape_rate) for r in reports]),
        ("overkill (chosen)", [_fmt(r.overkill_rate) for r in reports]),
        ("escape (card)", [_fmt(r.card.escape_rate) for r in reports]),
        ("overkill (card)", [_fmt(r.card.overkill_rate) for r in reports]),
    ]
    for name in reports[0].classes:
        rows.append((f"recall {name}", [_fmt(r.per_class[name]["recall"]) for r in reports]))
    lines = [
        f"# Evaluation of {reports[0].model['name']} {reports[0].model['version']}"
        f" (sha256 {reports[0].model['sha256'][:12]})",
        "",
        f"Target escape rate {reports[0].target_escape}; escape/overkill are part-level rates.",
        "",
        "| metric | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in rows]
    return "\n".join(lines) + "\n"


def cross_site(
    model_dir: Path,
    data_dirs: Sequence[Path],
    split: str,
    target_escape: float,
    out_dir: Path | None,
    **kwargs: Any,
) -> list[EvalReport]:
    """The same model on several data sets; with `out_dir`, one sub-folder each plus a combined report."""
    reports = []
    for i, data_dir in enumerate(data_dirs):
        sub = None if out_dir is None else out_dir / f"{i + 1}-{Path(data_dir).name}"
        reports.append(evaluate(model_dir, data_dir, split, target_escape, sub, **kwargs))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        combined = {"reports": [r.to_json() for r in reports]}
        atomic_write_text(out_dir / "cross_site.json", json.dumps(combined, indent=2) + "\n")
        atomic_write_text(out_dir / "cross_site.md", markdown(reports))
    return reports
