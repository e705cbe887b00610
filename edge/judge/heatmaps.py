"""Heat maps as they leave inference: small grey PNGs (base64 in the recorder's image note), and drawn over
the frame for people (status page, records).

A heat map covers the whole frame (the letterbox border already cropped off), at the model's resolution
or less: MAX_SIDE keeps one under ~10 KB, which is plenty to see where a stage looked.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge.judge.stage import StageResult

MAX_SIDE = 160
ALPHA = 0.45  # how much of the colour map shows over the frame


def encode_heatmaps(stages: Sequence[StageResult]) -> dict[str, str]:
    """Each stage's heat map that has one, as base64 PNG, by stage name."""
    encoded: dict[str, str] = {}
    for stage in stages:
        if stage.heatmap is None or stage.heatmap.size == 0:
            continue
        heat = stage.heatmap
        longest = max(heat.shape)
        if longest > MAX_SIDE:
            size = (
                max(1, round(heat.shape[1] * MAX_SIDE / longest)),
                max(1, round(heat.shape[0] * MAX_SIDE / longest)),
            )
            heat = np.asarray(cv2.resize(heat, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        ok, png = cv2.imencode(".png", heat)
        if ok:
            encoded[stage.stage] = base64.b64encode(png.tobytes()).decode("ascii")
    return encoded


def decode_heatmap(data: str | bytes) -> npt.NDArray[np.uint8]:
    """A heat map from its base64 PNG (or raw PNG bytes); ValueError when it is not one."""
    raw = base64.b64decode(data, validate=True) if isinstance(data, str) else data
    heat = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE)
    if heat is None:
        raise ValueError("heat map is not a readable PNG")
    return np.asarray(heat, dtype=np.uint8)


def overlay(frame_bgr: npt.NDArray[np.uint8], heat: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The frame with the heat map drawn over it in colour (where the map is above zero)."""
    height, width = frame_bgr.shape[:2]
    scaled = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(scaled, cv2.COLORMAP_JET)
    weight = (np.minimum(scaled, 128).astype(np.float32) / 128.0 * ALPHA)[..., None]
    base = frame_bgr if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    blended = base.astype(np.float32) * (1.0 - weight) + colour.astype(np.float32) * weight
    shown: npt.NDArray[np.uint8] = np.clip(blended, 0, 255).astype(np.uint8)
    return shown


def overlay_all(
    frame_bgr: npt.NDArray[np.uint8], heatmaps: Mapping[str, npt.NDArray[np.uint8]]
) -> npt.NDArray[np.uint8]:
    """Every stage's map over the frame (the strongest pixel of each wins)."""
    if not heatmaps:
        return np.asarray(frame_bgr, dtype=np.uint8)
    height, width = frame_bgr.shape[:2]
    merged = np.zeros((height, width), np.uint8)
    for heat in heatmaps.values():
        np.maximum(merged, cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR), out=merged)
    return overlay(frame_bgr, merged)
