"""Box-detection metrics in numpy: COCO-style AP (101-point interpolation, IoU 0.50:0.95), PR curves,
precision/recall at per-class thresholds and a confusion matrix with a background row and column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's ten IoU levels
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101 recall points
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes of one image in frame pixels (x1, y1, x2, y2): class ids, and scores for predictions."""

    classes: IntArray
    boxes: FloatArray
    scores: FloatArray

    @classmethod
    def of(
        cls, classes: Sequence[int], boxes: Sequence[Sequence[float]], scores: Sequence[float] = ()
    ) -> ImageBoxes:
        n = len(classes)
        return cls(
            np.asarray(classes, dtype=np.int64).reshape(n),
            np.asarray(boxes, dtype=np.float64).reshape(n, 4),
            np.asarray(scores if len(scores) else np.ones(n), dtype=np.float64).reshape(n),
        )

    def __len__(self) -> int:
        return len(self.classes)


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """(N, M) IoU of xyxy boxes a (N, 4) and b (M, 4); zero-area pairs give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0.0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0.0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def match_image(truth: ImageBoxes, pred: ImageBoxes, thresholds: FloatArray = IOU_THRESHOLDS) -> BoolArray:
    """(P, T) true-positive flags of the predictions, matched the COCO way per IoU threshold.

    Predictions in descending score order each take the unmatched truth box of their class with the
    highest IoU >= the threshold; a truth box is matched at most once.
    """
    tp = np.zeros((len(pred), len(thresholds)), dtype=bool)
    if len(pred) == 0 or len(truth) == 0:
        return tp
    iou = box_iou(pred.boxes, truth.boxes)
    iou[pred.classes[:, None] != truth.classes[None, :]] = -1.0
    taken = np.zeros((len(thresholds), len(truth)), dtype=bool)
    limits = np.minimum(thresholds, 1 - 1e-10)[:, None]
    for p in np.argsort(-pred.scores, kind="mergesort"):
        candidate = np.where(taken | (iou[p][None, :] < limits), -1.0, iou[p][None, :])
        best = candidate.argmax(axis=1)
        hit = candidate[np.arange(len(thresholds)), best] >= 0
        tp[p, hit] = True
        taken[np.flatnonzero(hit), best[hit]] = True
    return tp


def pr_curve(tp: BoolArray, scores: FloatArray, n_truth: int) -> tuple[FloatArray, FloatArray]:
    """Recall and precision (cumulative, best score first) of one class over all images, per threshold.

    tp is (P, T); returns two (P, T) arrays. Precision is the raw value (not the envelope).
    """
    order = np.argsort(-scores, kind="mergesort")
    tps = np.cumsum(tp[order], axis=0, dtype=np.float64)
    fps = np.cumsum(~tp[order], axis=0, dtype=np.float64)
    recall = tps / max(n_truth, 1)
    precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
    return recall, precision


def average_precision(tp: BoolArray, scores: FloatArray, n_truth: int) -> FloatArray:
    """(T,) COCO AP of one class: the precision envelope sampled at 101 recall points, averaged.

    NaN when the class has no truth boxes (COCO leaves such classes out of the mean).
    """
    tp = np.asarray(tp, dtype=bool)
    tp = tp[:, None] if tp.ndim == 1 else tp
    if n_truth == 0:
        return np.full(tp.shape[1], np.nan)
    if len(scores) == 0:
        return np.zeros(tp.shape[1])
    recall, precision = pr_curve(tp, np.asarray(scores, dtype=np.float64), n_truth)
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    ap = np.zeros(tp.shape[1])
    for t in range(tp.shape[1]):
        idx = np.searchsorted(recall[:, t], RECALL_POINTS, side="left")
        sampled = np.where(idx < len(recall), envelope[np.minimum(idx, len(recall) - 1), t], 0.0)
        ap[t] = sampled.mean()
    return ap


@dataclass(frozen=True)
class ClassStats:
    """One class over a data set: its truth count and every prediction's score and match flags."""

    n_truth: int
    scores: FloatArray
    tp: BoolArray  # (P, T)

    @property
    def ap(self) -> FloatArray:
        return average_precision(self.tp, self.scores, self.n_truth)

    def at_threshold(self, threshold: float) -> tuple[float, float]:
        """Precision and recall at IoU 0.5 counting predictions with score >= threshold."""
        kept = self.scores >= threshold
        tp = int(self.tp[kept, 0].sum())
        predicted = int(kept.sum())
        precision = tp / predicted if predicted else float("nan")
        recall = tp / self.n_truth if self.n_truth else float("nan")
        return precision, recall


def class_stats(
    truths: Sequence[ImageBoxes], preds: Sequence[ImageBoxes], n_classes: int
) -> list[ClassStats]:
    """Per class, the matches of all images' predictions against their truth."""
    flags = [match_image(t, p) for t, p in zip(truths, preds, strict=True)]
    stats = []
    for c in range(n_classes):
        n_truth = int(sum(int((t.classes == c).sum()) for t in truths))
        scores = [p.scores[p.classes == c] for p in preds]
        tps = [f[p.classes == c] for f, p in zip(flags, preds, strict=True)]
        stats.append(
            ClassStats(
                n_truth,
                np.concatenate(scores) if scores else np.zeros(0),
                np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool),
            )
        )
    return stats


def mean_ap(stats: Sequence[ClassStats]) -> tuple[float, float]:
    """(mAP50, mAP50-95) over the classes that have truth boxes; NaN when none has."""
    aps = np.array([s.ap for s in stats if s.n_truth > 0]).reshape(-1, len(IOU_THRESHOLDS))
    if len(aps) == 0:
        return float("nan"), float("nan")
    return float(aps[:, 0].mean()), float(aps.mean())


def confusion_matrix(
    truths: Sequence[ImageBoxes],
    preds: Sequence[ImageBoxes],
    n_classes: int,
    thresholds: Mapping[int, float],
    iou: float = 0.5,
) -> IntArray:
    """(C+1, C+1) counts, rows = truth class, columns = predicted class, index C = background.

    Predictions at or above their class threshold are matched to truth boxes of any class, highest IoU
    (>= iou) first, one to one. Unmatched predictions count as (background, class); missed truth boxes
    as (class, background).
    """
    matrix = np.zeros((n_classes + 1, n_classes + 1), dtype=np.int64)
    for truth, pred in zip(truths, preds, strict=True):
        limits = np.array([thresholds.get(int(c), 1.0) for c in pred.classes], dtype=np.float64)
        keep = pred.scores >= limits.reshape(-1)
        p_cls, p_box = pred.classes[keep], pred.boxes[keep]
        pairs = box_iou(truth.boxes, p_box)
        t_free = np.ones(len(truth), dtype=bool)
        p_free = np.ones(len(p_cls), dtype=bool)
        for flat in np.argsort(-pairs, axis=None, kind="mergesort"):
            ti, pi = np.unravel_index(flat, pairs.shape)
            if pairs[ti, pi] < iou:
                break
            if t_free[ti] and p_free[pi]:
                matrix[truth.classes[ti], p_cls[pi]] += 1
                t_free[ti] = p_free[pi] = False
        np.add.at(matrix[:, n_classes], truth.classes[t_free], 1)  # views: counts land in `matrix`
        np.add.at(matrix[n_classes], p_cls[p_free], 1)
    return matrix
