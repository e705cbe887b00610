"""COCO-style AP, matching and the confusion matrix against examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    IOU_THRESHOLDS,
    ImageBoxes,
    average_precision,
    box_iou,
    class_stats,
    confusion_matrix,
    match_image,
    mean_ap,
)


def test_box_iou_of_half_overlapping_squares_is_one_third() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]))
    assert iou[0] == pytest.approx([1 / 3, 0.0, 1.0])


def test_ap_matches_the_hand_computed_101_point_value() -> None:
    # 3 truth boxes; ranked detections TP, FP, TP, FP: precision 1, 1/2, 2/3, 1/2
    # at recall 1/3, 1/3, 2/3, 2/3.
    # Envelope: 1 for recall <= 1/3 (34 points 0.00..0.33), 2/3 up to 2/3 (33 points 0.34..0.66), then 0.
    ap = average_precision(np.array([True, False, True, False]), np.array([0.9, 0.8, 0.7, 0.6]), n_truth=3)
    assert ap[0] == pytest.approx((34 * 1.0 + 33 * 2 / 3) / 101)


def test_ap_is_independent_of_the_input_order_and_nan_without_truth() -> None:
    ap = average_precision(np.array([False, True, False, True]), np.array([0.6, 0.7, 0.8, 0.9]), n_truth=3)
    assert ap[0] == pytest.approx(56 / 101)
    assert math.isnan(average_precision(np.array([True]), np.array([0.5]), n_truth=0)[0])
    assert average_precision(np.zeros(0, dtype=bool), np.zeros(0), n_truth=2)[0] == 0.0


def test_a_duplicate_detection_is_a_false_positive_and_the_class_must_match() -> None:
    truth = ImageBoxes.of([0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]])
    pred = ImageBoxes.of([0, 0, 0], [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7])
    tp = match_image(truth, pred)
    assert tp[:, 0].tolist() == [True, False, False]  # the second copy and the wrong-class box miss


def test_matching_takes_the_highest_iou_box_per_threshold() -> None:
    truth = ImageBoxes.of([0], [[0, 0, 10, 10]])
    # IoU 0.8 with the truth: a hit up to the 0.80 threshold, a miss from 0.85 on.
    pred = ImageBoxes.of([0], [[0, 0, 10, 8]], [0.5])
    tp = match_image(truth, pred)
    assert tp[0].tolist() == [t <= 0.8 + 1e-9 for t in IOU_THRESHOLDS]


def test_perfect_predictions_give_map_one_and_misses_lower_it() -> None:
    truths = [ImageBoxes.of([0, 1], [[0, 0, 10, 10], [20, 20, 40, 40]]), ImageBoxes.of([0], [[5, 5, 15, 15]])]
    perfect = [ImageBoxes.of(t.classes.tolist(), t.boxes.tolist(), [0.9] * len(t)) for t in truths]
    assert mean_ap(class_stats(truths, perfect, 3)) == pytest.approx(
        (1.0, 1.0)
    )  # class 2: no truth, left out
    half = [perfect[0], ImageBoxes.of([], [])]
    map50, _ = mean_ap(class_stats(truths, half, 3))
    # class 0 finds 1 of 2 at precision 1: 51 of 101 recall points; class 1 is perfect.
    assert map50 == pytest.approx((51 / 101 + 1.0) / 2)


def test_precision_and_recall_at_a_threshold_count_only_boxes_at_or_above_it() -> None:
    truths = [ImageBoxes.of([0, 0], [[0, 0, 10, 10], [20, 20, 30, 30]])]
    preds = [ImageBoxes.of([0, 0, 0], [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.9, 0.6, 0.3])]
    stats = class_stats(truths, preds, 1)[0]
    assert stats.at_threshold(0.5) == pytest.approx((0.5, 0.5))
    assert stats.at_threshold(0.2) == pytest.approx((2 / 3, 1.0))


def test_confusion_matrix_counts_class_swaps_misses_and_background_hits() -> None:
    truths = [ImageBoxes.of([0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]])]
    preds = [ImageBoxes.of([1, 0, 0], [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31]], [0.9, 0.8, 0.1])]
    matrix = confusion_matrix(truths, preds, 2, {0: 0.5, 1: 0.5})
    # truth 0 seen as 1; truth 1 missed (its only overlap is below threshold); a class-0 box on background
    assert matrix.tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
