"""In-process figures: the floor (session.run on a ready tensor), the detector alone, and a peer.

Floor and detector are measured interleaved, one call of each per iteration, so that a noisy shared
machine slows them alike and their ratio stays meaningful.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.bench.stats import Spread, spread
from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.detector import Detector
from edge.judge.detector.preprocess import Preprocessor
from edge.judge.rules import RoiConfig, RulesConfig, decide, rules_from_card

Frame = npt.NDArray[np.uint8]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class ModelFigures:
    """Floor and detector alone (with its steps), interleaved in the same iterations."""

    floor: Spread
    detector: Spread
    steps: dict[str, Spread]  # preprocess, infer, decode, rules: parts of `detector`


def parse_frame_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); LinesideError naming --frame otherwise."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 8 or int(height) < 8:
        raise LinesideError(f"--frame: expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(width), int(height)


def load_frames(folder: Path, size: tuple[int, int] | None = None, limit: int = 60) -> list[Frame]:
    """Up to `limit` images of `folder` in name order, BGR, resized to `size` (width, height) if given."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise LinesideError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to benchmark on")
    frames: list[Frame] = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise LinesideError(f"{path}: OpenCV cannot decode this image")
        if size is not None and (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(image, dtype=np.uint8))
    return frames


def open_detector(model_dir: Path, cfg: DetectorConfig) -> tuple[Detector, float, float]:
    """The detector, the seconds its loading took and the seconds its warm-up took."""
    start = time.perf_counter()
    detector = Detector(model_dir, cfg)
    loaded = time.perf_counter()
    detector.warmup()
    return detector, loaded - start, time.perf_counter() - loaded


def measure_floor(detector: Detector, frame: Frame, *, iterations: int, warmup: int) -> Spread:
    """session.run alone on a ready tensor, e.g. again after the appliance ran, to see the machine drift."""
    tensor = Preprocessor(detector.card.input)(frame)[0].copy()
    samples: list[float] = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        detector.run_raw(tensor)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000.0)
    return spread(samples, "floor")


def measure_model(
    detector: Detector,
    frames: list[Frame],
    *,
    iterations: int,
    warmup: int,
    rules: RulesConfig | None = None,
    roi: RoiConfig | None = None,
) -> ModelFigures:
    """Floor, detector alone and its steps over `iterations` rounds after `warmup` untimed ones."""
    if iterations < 1 or warmup < 0 or not frames:
        raise LinesideError("bench: needs at least one iteration, warmup >= 0 and one frame")
    card = detector.card
    rules = rules if rules is not None else rules_from_card(card)
    tensor = Preprocessor(card.input)(frames[0])[0].copy()  # ready once, outside the clock
    samples: dict[str, list[float]] = {
        k: [] for k in ("floor", "detector", "preprocess", "infer", "decode", "rules")
    }
    for i in range(warmup + iterations):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        detector.run_raw(tensor)
        t1 = time.perf_counter()
        found = detector.detect(frame)
        t2 = time.perf_counter()
        decide(found.detections, frame.shape, rules, roi, card.classes)
        t3 = time.perf_counter()
        if i < warmup:
            continue
        samples["floor"].append((t1 - t0) * 1000.0)
        samples["detector"].append((t3 - t1) * 1000.0)
        samples["preprocess"].append(found.preprocess_ms)
        samples["infer"].append(found.infer_ms)
        samples["decode"].append(found.decode_ms)
        samples["rules"].append((t3 - t2) * 1000.0)
    steps = {k: spread(samples[k], k) for k in ("preprocess", "infer", "decode", "rules")}
    return ModelFigures(spread(samples["floor"], "floor"), spread(samples["detector"], "detector"), steps)


def measure_peer(
    peer: Callable[[Frame], object], frames: list[Frame], *, iterations: int, warmup: int
) -> Spread:
    """Another implementation on the same frames, timed in its own block.

    Not interleaved with the floor: a second onnxruntime session has its own spinning thread pool, and
    two pools taking turns on a small machine slow each other (measured: up to 2x on 2 cores).
    """
    samples: list[float] = []
    for i in range(warmup + iterations):
        frame = frames[i % len(frames)]
        start = time.perf_counter()
        peer(frame)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000.0)
    return spread(samples, "peer")


def compare_floors(
    detectors: list[Detector], frame: Frame, *, rounds: int = 8, block: int = 15, warmup: int = 5
) -> list[Spread]:
    """The floor of several models in alternating blocks, so that all see the same machine (e.g. the
    INT8 speed-up over fp32); blocks, not single runs, as two thread pools taking turns slow each other."""
    tensors = [Preprocessor(d.card.input)(frame)[0].copy() for d in detectors]
    samples: list[list[float]] = [[] for _ in detectors]
    for _ in range(rounds):
        for detector, tensor, out in zip(detectors, tensors, samples, strict=True):
            for i in range(warmup + block):
                start = time.perf_counter()
                detector.run_raw(tensor)
                if i >= warmup:
                    out.append((time.perf_counter() - start) * 1000.0)
    return [
        spread(s, f"floor of {d.card.name} {d.card.version}") for d, s in zip(detectors, samples, strict=True)
    ]
