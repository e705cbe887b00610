"""Decode the Ultralytics YOLO v8/11 detection head into detections in original-frame pixels.

The head gives (1, 4 + classes, anchors): cx, cy, w, h in model-input pixels, then one sigmoid score per
class (no objectness). Confidence floor first, then class-aware NMS, then the map back to the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from edge.judge.detector.errors import InferenceError
from edge.judge.detector.preprocess import LetterboxTransform
from edge.judge.inspection import Detection

# fp16 sigmoid outputs may overshoot 1.0 by rounding; anything further means the head is not a sigmoid.
_SCORE_SLACK = 1e-3


def check_output_shape(shape: Sequence[int | str | None], class_count: int, model: str) -> None:
    """Raise InferenceError when a (1, 4 + classes, anchors) head does not match the card's classes.

    Symbolic (non-integer) dimensions are accepted here; they are checked again on every real output.
    """
    expected = 4 + class_count
    fixed = [d if isinstance(d, int) else None for d in shape]
    if len(fixed) != 3 or fixed[0] not in (1, None) or fixed[1] not in (expected, None):
        raise InferenceError(
            f"model {model}: output shape {list(shape)} does not match its card: expected"
            f" (1, {expected}, anchors) for {class_count} classes"
        )


def decode_yolov8(
    output: npt.NDArray[np.floating],
    *,
    transform: LetterboxTransform,
    class_names: Sequence[str],
    conf_floor: float,
    iou: float,
    max_detections: int,
    model: str,
) -> tuple[Detection, ...]:
    """Detections with confidence >= conf_floor after class-aware NMS, highest confidence first."""
    check_output_shape(output.shape, len(class_names), model)
    head = output[0]  # (4 + classes, anchors); indexing the 2-D view keeps axis order predictable
    scores = head[4:]
    confidence = scores.max(axis=0)
    if not np.isfinite(confidence).all():
        raise InferenceError(f"model {model}: output holds non-finite scores")
    candidates = np.flatnonzero(confidence >= conf_floor)
    if candidates.size == 0:
        return ()
    conf = confidence[candidates].astype(np.float32)
    if conf.max() > 1.0 + _SCORE_SLACK:
        raise InferenceError(f"model {model}: score {conf.max():.3f} > 1: output is not a sigmoid YOLO head")
    class_ids = scores[:, candidates].argmax(axis=0).astype(np.int32)
    cxcywh = head[:4, candidates].astype(np.float64).T
    if not np.isfinite(cxcywh).all() or (cxcywh[:, 2:] < 0).any():
        raise InferenceError(f"model {model}: output holds non-finite or negative-size boxes")
    xywh = cxcywh.copy()
    xywh[:, :2] -= cxcywh[:, 2:] / 2.0
    kept = _class_aware_nms(xywh, conf, class_ids, iou)
    kept = kept[np.argsort(-conf[kept], kind="stable")][:max_detections]
    xyxy = np.concatenate([xywh[kept, :2], xywh[kept, :2] + xywh[kept, 2:]], axis=1)
    frame_boxes = transform.boxes_to_frame(xyxy)
    return tuple(
        Detection(
            class_id=int(class_ids[k]),
            class_name=class_names[int(class_ids[k])],
            confidence=min(float(conf[k]), 1.0),
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        )
        for k, b in zip(kept, frame_boxes, strict=True)
    )


def _class_aware_nms(
    xywh: npt.NDArray[np.float64], conf: npt.NDArray[np.float32], class_ids: npt.NDArray[np.int32], iou: float
) -> npt.NDArray[np.intp]:
    """Indices kept by greedy NMS run separately per class.

    OpenCV's NMSBoxesBatched (checked on OpenCV 5.0 against a greedy numpy NMS, see tests) suppresses a box
    whose IoU with a better box of the same class is > iou, like the torchvision nms Ultralytics uses; its
    score threshold is strict (>), so it gets -1 here: the confidence floor (>=) was applied already.
    """
    # The OpenCV stubs ask for sequences; numpy arrays are what its binding converts fastest.
    kept = cv2.dnn.NMSBoxesBatched(cast(Any, xywh), cast(Any, conf), cast(Any, class_ids), -1.0, float(iou))
    return np.asarray(kept, dtype=np.intp).reshape(-1)
