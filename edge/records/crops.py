"""Evidence crops: the parts of a kept frame that decided its verdict, with the box or heat map drawn.

Cut and drawn by the recorder when it keeps the image (after the verdict, off the inspection path), kept
beside the image under the same quota, and shown by `lineside records show` and the status page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.judge.heatmaps import decode_heatmap, overlay

MAX_CROPS = 3
MIN_SIDE = 128  # a crop is enlarged to at least this, so a 10 px defect and its box stay visible
MIN_PAD_PX = 24  # frame pixels of context around a box
FIRED = (40, 40, 230)  # BGR: what rejected the part
BELOW = (0, 170, 255)  # what came close


@dataclass(frozen=True)
class Crop:
    """One drawn crop and where it came from (`rect` in frame px, `scale` = crop px per frame px)."""

    pixels: npt.NDArray[np.uint8]
    meta: dict[str, Any]


def evidence_crops(
    image: npt.NDArray[np.uint8], heatmaps: Mapping[str, bytes], evidence: Mapping[str, Any]
) -> list[Crop]:
    """The crops worth keeping for this evidence: the rule that fired, the next rejecting finding, and for a
    near-threshold ACCEPT the finding that came closest. Raises on a malformed frame or evidence (the
    caller counts it; a crop is a picture, never a reason to lose a record)."""
    frame = np.asarray(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), np.uint8)
    targets: list[tuple[dict[str, Any], tuple[int, int, int]]] = []
    if evidence.get("rule"):
        targets.append((evidence["rule"], FIRED))
    targets += [(f, FIRED) for f in evidence.get("fired", [])[:1]]
    if evidence.get("verdict") == "ACCEPT" and evidence.get("near_threshold"):
        targets += [(f, BELOW) for f in evidence.get("runner_ups", [])[:1]]
    crops = []
    for finding, colour in targets:
        crop = _crop(frame, heatmaps, finding, colour)
        if crop is not None:
            crops.append(crop)
        if len(crops) == MAX_CROPS:
            break
    return crops


def _crop(
    frame: npt.NDArray[np.uint8],
    heatmaps: Mapping[str, bytes],
    finding: Mapping[str, Any],
    colour: tuple[int, int, int],
) -> Crop | None:
    height, width = frame.shape[:2]
    box = finding.get("box")
    hottest = finding.get("hottest")
    if box is not None:
        x1, y1, x2, y2 = (float(v) for v in box)
        pad = max(MIN_PAD_PX, 0.75 * max(x2 - x1, y2 - y1))
        rect = _clip(x1 - pad, y1 - pad, x2 + pad, y2 + pad, width, height)
        source, draw = frame, "box"
    elif hottest is not None:
        hx, hy = (float(v) for v in hottest)
        half = max(MIN_PAD_PX * 1.5, min(width, height) / 4.0)
        rect = _clip(hx - half, hy - half, hx + half, hy + half, width, height)
        png = heatmaps.get(str(finding.get("stage")))
        source = overlay(frame, decode_heatmap(png)) if png else frame
        draw = "heat" if png else "point"
    else:
        return None
    x, y, w, h = rect
    scale = max(1.0, MIN_SIDE / max(1, min(w, h)))
    cut = source[y : y + h, x : x + w]
    canvas = cv2.resize(cut, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_NEAREST)
    thickness = max(1, round(scale))
    if box is not None:
        x1, y1, x2, y2 = ((float(v) - o) * scale for v, o in zip(box, (x, y, x, y), strict=True))
        cv2.rectangle(canvas, (round(x1), round(y1)), (round(x2), round(y2)), colour, thickness + 1)
    elif hottest is not None:
        centre = (round((float(hottest[0]) - x) * scale), round((float(hottest[1]) - y) * scale))
        # A ring, not a cross: the hottest pixels themselves stay visible inside it.
        cv2.circle(canvas, centre, round(10 * scale), colour, thickness, cv2.LINE_AA)
    meta = {
        "stage": finding.get("stage"),
        "code": finding.get("code"),
        "rect": [x, y, w, h],
        "scale": round(scale, 4),
        "draw": draw,
    }
    return Crop(np.ascontiguousarray(canvas, dtype=np.uint8), meta)


def _clip(  # noqa: PLR0917 (a rectangle's four sides and the frame's two)
    x1: float, y1: float, x2: float, y2: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """[x, y, w, h] inside the frame, at least one pixel."""
    left, top = max(0, int(x1)), max(0, int(y1))
    right, bottom = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
    return left, top, max(1, right - left), max(1, bottom - top)


def encoded_crops(
    image: npt.NDArray[np.uint8], heatmaps: Mapping[str, bytes], evidence: Mapping[str, Any]
) -> list[tuple[bytes, dict[str, Any]]]:
    """The evidence crops as PNG bytes with their meta; raises like `evidence_crops`."""
    encoded = []
    for crop in evidence_crops(image, heatmaps, evidence):
        ok, png = cv2.imencode(".png", crop.pixels)
        if not ok:
            raise ValueError("evidence crop could not be encoded as png")
        encoded.append((bytes(png.tobytes()), crop.meta))
    return encoded
