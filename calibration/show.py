"""`calibrate show`: one picture of what the station is set to: ROI, mm scale bar, and what the model sees.

Detections are coloured by what the rules would do with them: red rejects, orange is below its class
threshold, grey lies outside the ROI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from calibration.frames import Image
from calibration.roi import draw_roi, put_label
from edge.geometry import Scale
from edge.judge.inspection import Detection
from edge.judge.rules import RoiConfig, RulesConfig
from edge.station.calibfile import CalibrationFile

REJECT_BGR = (0, 0, 255)
BELOW_BGR = (0, 165, 255)
OUTSIDE_BGR = (160, 160, 160)
BAR_BGR = (255, 255, 255)
MAX_DRAWN = 30  # more boxes than this hide the frame; the strongest are drawn


def nice_length_mm(scale: Scale, frame_width: int) -> float:
    """A 1-2-5 length in mm whose bar is about a fifth of the frame wide."""
    target = scale.to_mm(frame_width / 5.0)
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in (1.0, 2.0, 5.0) if step * power <= target)


def draw_scale_bar(image: Image, scale: Scale) -> None:
    """A bar of a round mm length in the bottom-left corner, labelled."""
    height, width = image.shape[:2]
    length_mm = nice_length_mm(scale, width)
    length_px = round(length_mm / scale.mm_per_px)
    x0, y0 = 16, height - 20
    cv2.rectangle(image, (x0 - 4, y0 - 22), (x0 + length_px + 4, y0 + 10), (0, 0, 0), cv2.FILLED)
    cv2.line(image, (x0, y0), (x0 + length_px, y0), BAR_BGR, 3)
    for x in (x0, x0 + length_px):
        cv2.line(image, (x, y0 - 6), (x, y0 + 6), BAR_BGR, 2)
    put_label(image, f"{length_mm:g} mm ({scale.mm_per_px:.4f} mm/px)", (x0, y0 - 10), BAR_BGR)


def _colour(detection: Detection, inside: bool, rules: RulesConfig) -> tuple[int, int, int]:
    if not inside or detection.class_name in rules.ignore:
        return OUTSIDE_BGR
    return (
        REJECT_BGR
        if detection.confidence >= rules.rule_for(detection.class_name).min_confidence
        else BELOW_BGR
    )


def draw_detections(
    image: Image, detections: Sequence[Detection], roi: RoiConfig, rules: RulesConfig
) -> None:
    """Boxes labelled with class and confidence, the strongest MAX_DRAWN of them."""
    strongest = sorted(detections, key=lambda d: -d.confidence)[:MAX_DRAWN]
    centres = np.array([d.centre for d in strongest], dtype=np.float64).reshape(-1, 2)
    for det, inside in zip(strongest, roi.contains(centres), strict=True):
        colour = _colour(det, bool(inside), rules)
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        put_label(image, f"{det.class_name} {det.confidence:.2f}", (x1, y1 - 4), colour)


def station_view(
    image: Image, calibration: CalibrationFile, detections: Sequence[Detection], rules: RulesConfig
) -> Image:
    """The frame with the calibration's ROI, its scale bar (if any) and the detections drawn on it.

    The frame must already be in the runtime's pixel space (calibration.frames.runtime_frame).
    """
    roi = calibration.roi.in_pixel_space(calibration.intrinsics_id()) if calibration.roi else RoiConfig()
    scale = calibration.scale_for(image.shape)
    view = draw_roi(image, roi, scale)
    draw_detections(view, detections, roi, rules)
    if scale is not None:
        draw_scale_bar(view, scale)
    legend = f"{len(detections)} detection(s): red rejects, orange below threshold, grey outside ROI"
    put_label(view, legend, (8, image.shape[0] - 48 if scale is not None else image.shape[0] - 8), BAR_BGR)
    return view
