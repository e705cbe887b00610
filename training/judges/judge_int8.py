"""INT8 classify and anomaly models: the backbone quantised (training/quantize.py), everything after it in
fp32, and the parity verdict against the fp32 model through the appliance's own runner, which the
registry's promotion gate reads like a detector's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import LinesideError
from edge.judge.scoremap import ScoreMapModel
from edge.modelstore.card import ModelCard
from training.quantize import quantize_model

# Largest score difference allowed, as a fraction of the fp32 threshold, and no verdict may flip.
SCORE_TOLERANCE = 0.05


def quantize_judge(model_dir: Path, calib_images: Sequence[Path], out_dir: Path) -> ModelCard:
    """An INT8 copy of a classify or anomaly model (backbone only) in `out_dir`, with its own card."""
    return quantize_model(model_dir, list(calib_images), out_dir, keep_fp32="all-but-backbone")


def judge_parity(candidate: Path, reference: Path, images: Sequence[Path]) -> dict[str, Any]:
    """Scores and verdicts of `candidate` (INT8) against `reference` (fp32) on `images`, as parity.json."""
    cand, ref = ScoreMapModel(candidate), ScoreMapModel(reference)
    if cand.card.task != ref.card.task or cand.card.classes != ref.card.classes:
        raise LinesideError(f"{candidate}: not the same kind of model as {reference}; nothing to compare")
    threshold = float(ref.card.thresholds.score or 0.0)
    # An INT8 anomaly model has its own bank and so its own threshold (int8_bank.py): each model's verdict
    # is taken at its own card's threshold; the scores must still agree within the tolerance.
    own = float(cand.card.thresholds.score or 0.0)
    room = SCORE_TOLERANCE * max(threshold, 1e-6)
    failed, worst = [], 0.0
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise LinesideError(f"{path}: not a readable image")
        frame = np.asarray(image, dtype=np.uint8)
        a, b = cand.run(frame).score, ref.run(frame).score
        worst = max(worst, abs(a - b))
        if abs(a - b) > room or (a >= own) != (b >= threshold):
            failed.append(path.name)
    return {
        "passed": bool(images) and not failed,
        "candidate": str(candidate),
        "candidate_sha256": cand.card.sha256,
        "reference": str(reference),
        "reference_sha256": ref.card.sha256,
        "mismatch": "none",
        "images": len(images),
        "failed": failed,
        "max_score_diff": worst,
        "tolerance": {"score": room, "verdict_flips": 0},
    }
