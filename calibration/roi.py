"""The region of interest: parse it from the command line, check it fits the frame, store it, draw it.

Only detections whose box centre lies in the region can reject a part (edge.judge.rules.RoiConfig).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError

from calibration.errors import InputError
from calibration.frames import Image, camera_of
from edge.errors import LinesideError
from edge.geometry import Scale
from edge.i18n import Message, render
from edge.judge.rules import RoiConfig
from edge.station.calibfile import CalibrationFile, update_calibration
from edge.station.calibsections import StationRoi

OUTLINE_BGR = (255, 0, 255)  # magenta: stands out on grey metal, green PCBs and brown castings
OUTSIDE_DIMMING = 0.45  # what is outside the region is drawn darker, so the region reads at a glance


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(Message("calib.input.not_numbers", {"option": option, "text": repr(text)})) from None


def _roi(option: str, **shape: object) -> RoiConfig:
    try:
        return RoiConfig.model_validate(shape)
    except ValidationError as exc:
        said = {"option": option, "error": exc.errors()[0]["msg"]}  # pydantic's words, as it said them
        raise InputError(Message("calib.input.roi_invalid", said)) from None


def parse_rect(text: str) -> RoiConfig:
    """'x,y,w,h' in frame pixels (top-left origin)."""
    values = _numbers(text, "--rect")
    if len(values) != 4:
        raise InputError(Message("calib.input.rect_count", {"text": repr(text), "count": len(values)}))
    return _roi("--rect", rect=tuple(values))


def parse_polygon(text: str) -> RoiConfig:
    """'x1,y1,x2,y2,x3,y3,...' corners in order, frame pixels."""
    values = _numbers(text, "--polygon")
    if len(values) < 6 or len(values) % 2:
        raise InputError(Message("calib.input.polygon_count", {"text": repr(text)}))
    return _roi("--polygon", polygon=list(zip(values[0::2], values[1::2], strict=True)))


def roi_corners(roi: RoiConfig, width: int, height: int) -> list[tuple[float, float]]:
    """The region's outline in frame pixels (the whole frame when it has no shape)."""
    if roi.rect is not None:
        x, y, w, h = roi.rect
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    if roi.polygon is not None:
        return list(roi.polygon)
    return [(0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height))]


def roi_message(roi: RoiConfig, scale: Scale | None) -> Message:
    """The region in words: 'rect at (40,30) 200x150 px = 20.0x15.0 mm' or 'polygon of 5 corners, bounding
    box at ...' in English; said in the technician's language."""
    if roi.rect is None and roi.polygon is None:
        return Message("calib.roi.whole")
    corners = np.array(roi_corners(roi, 0, 0), dtype=np.float64)
    x0, y0 = corners.min(axis=0)
    w, h = corners.max(axis=0) - corners.min(axis=0)
    mm: Message | str = ""
    if scale is not None:
        mm = Message("calib.roi.mm", {"w": scale.to_mm(w), "h": scale.to_mm(h)})
    box = {"x": x0, "y": y0, "w": w, "h": h, "mm": mm}
    if roi.rect is not None:
        return Message("calib.roi.rect", box)
    return Message("calib.roi.polygon", {"corners": len(corners), **box})


def describe_roi(roi: RoiConfig, scale: Scale | None) -> str:
    """The region in English, as the picture's label says it (OpenCV's stroke font has no Hangul)."""
    return render(roi_message(roi, scale), "en")


def draw_roi(image: Image, roi: RoiConfig, scale: Scale | None) -> Image:
    """A copy of the frame, outside the region dimmed, the region outlined and labelled with its size."""
    height, width = image.shape[:2]
    corners = roi_corners(roi, width, height)
    # Corners on the far edge (x == width) are legal in the ROI but one past the last pixel to draw.
    outline = np.array(
        [[min(round(x), width - 1), min(round(y), height - 1)] for x, y in corners], dtype=np.int32
    )
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [outline], 255)
    drawn: Image = np.array(image, dtype=np.uint8, copy=True)
    outside = mask == 0
    drawn[outside] = (drawn[outside] * OUTSIDE_DIMMING).astype(np.uint8)
    cv2.polylines(drawn, [outline], isClosed=True, color=OUTLINE_BGR, thickness=2)
    left, top = int(outline[:, 0].min()), int(outline[:, 1].min())
    put_label(drawn, f"ROI {describe_roi(roi, scale)}", (left + 4, max(top - 8, 16)), OUTLINE_BGR)
    return drawn


def put_label(image: Image, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text on a dark box, kept inside the frame, readable on any background."""
    font, size, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (w, h), base = cv2.getTextSize(text, font, size, thickness)
    x = max(0, min(origin[0], image.shape[1] - w - 4))
    y = max(h + 2, min(origin[1], image.shape[0] - base - 2))
    cv2.rectangle(image, (x - 2, y - h - 2), (x + w + 2, y + base + 1), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (x, y), font, size, colour, thickness, cv2.LINE_AA)


def save_roi(
    calibration_path: Path, frame: Image, roi: RoiConfig, intrinsics_id: str = ""
) -> CalibrationFile:
    """Store the region, drawn on `frame` in the pixel space `intrinsics_id` ('' = raw frames).

    The file is created for this frame size if absent. Refuses a region reaching outside the frame,
    and a file made for another frame size.
    """
    camera = camera_of(frame)
    try:
        roi.check_within(camera.width, camera.height)
    except LinesideError:  # the runtime's own check; said here in the technician's words
        name = f"roi.rect {list(roi.rect)}" if roi.rect is not None else "roi.polygon"
        outside = {"name": name, "width": camera.width, "height": camera.height}
        raise InputError(Message("calib.input.roi_outside", outside)) from None
    stored = StationRoi(rect=roi.rect, polygon=roi.polygon, intrinsics_id=intrinsics_id)
    return update_calibration(calibration_path, camera, roi=stored)
