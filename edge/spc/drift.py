"""Image drift (brightness, contrast, sharpness of each frame) and score drift (how close ACCEPTed parts
come to rejecting), each as EWMA charts: they warn while the verdicts are still right.

Brightness is the mean grey, contrast its standard deviation, sharpness the variance of the Laplacian
(the station check's focus measure, edge/station/check.py), so that a drift alarm speaks the calibration's
language; a calibration reference frame, when given, is the centre line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.spc.alarm import Alarm, PartKey
from edge.spc.config import SpcConfig
from edge.spc.ewma import EwmaChart
from edge.station.calibfile import load_calibration

IMAGE_MEASURES = ("brightness", "contrast", "sharpness")
MEASURE_PIXELS = 320 * 240  # larger frames are measured strided (frame_measures)


def frame_measures(frame: npt.NDArray[np.uint8]) -> dict[str, float]:
    """Brightness (mean grey), contrast (grey std) and sharpness (variance of the Laplacian) of a frame.

    A frame above MEASURE_PIXELS is measured on every k-th pixel of every k-th row: the live line measures
    every frame in the inference worker, and whole frames cost 2.2 ms at VGA and 25 ms at 5 MP, strided
    0.8 and 0.2 ms (docs/spc.md). Every user (live, replay, the calibration reference) goes through here, so a
    drift chart compares like with like."""
    height, width = frame.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / MEASURE_PIXELS)))
    if step > 1:
        frame = frame[::step, ::step]
    grey = frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(grey)
    return {
        "brightness": float(mean[0][0]),
        "contrast": float(std[0][0]),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
    }


class ImageDrift:
    """One two-sided EWMA chart per image measure (those enabled in the config)."""

    def __init__(self, config: SpcConfig, reference: Mapping[str, float] | None = None) -> None:
        ref = reference or {}
        self.charts = {
            name: EwmaChart(name, getattr(config, name), reference=ref.get(name), history=config.history)
            for name in IMAGE_MEASURES
            if getattr(config, name).enabled
        }

    def add_frame(self, frame: npt.NDArray[np.uint8], part: PartKey) -> list[Alarm]:
        return self.add_measures(frame_measures(frame), part)

    def add_measures(self, measures: Mapping[str, float], part: PartKey) -> list[Alarm]:
        alarms = []
        for name, chart in self.charts.items():
            alarm = chart.add(measures[name], part)
            if alarm is not None:
                alarms.append(alarm)
        return alarms


def closeness(stages: Sequence[Mapping[str, Any]]) -> float | None:
    """How close a part came to rejecting: the largest score / threshold over its stages (1.0 = at the
    threshold). A detector stage with no detection scores 0. None when no stage has a threshold."""
    ratios = []
    for stage in stages:
        threshold = stage.get("threshold")
        score = stage.get("score")
        if stage.get("kind") == "detect" and score is None:
            ratios.append(0.0)
        elif threshold and score is not None and math.isfinite(float(score)):
            ratios.append(float(score) / float(threshold))
    return max(ratios) if ratios else None


class ScoreDrift:
    """An upper EWMA of score / threshold on ACCEPTed parts: scores creeping toward the threshold alarm
    while the parts are still accepted (a rejected part is not charted: its verdict already spoke)."""

    def __init__(self, config: SpcConfig) -> None:
        self.chart = EwmaChart("score", config.score, sides="upper", history=config.history)

    def add(self, ratio: float, part: PartKey) -> Alarm | None:
        return self.chart.add(ratio, part)


def reference_measures(calibration_path: Path) -> dict[str, float]:
    """The image measures of a calibration file's reference frame (the station check's baseline), as the
    centre lines of image drift. LinesideError when the file has no reference or its image changed."""
    from edge.station.check import StationReference

    StationReference.load(calibration_path)  # checks the reference exists and its image is the stored one
    calibration = load_calibration(calibration_path)
    assert calibration.reference is not None  # load() refused a file without one
    image = cv2.imread(str(calibration_path.parent / calibration.reference.image), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise LinesideError(f"{calibration_path}: reference image unreadable")
    return frame_measures(np.asarray(image, dtype=np.uint8))
