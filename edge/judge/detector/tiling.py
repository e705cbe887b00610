"""Tiled detection for small defects on large frames: overlapping tiles, one detection each, merged boxes.

Each tile is pre-processed like a whole frame (the model was trained on tiles of this size), the tiles
run in batches when the model's batch dimension is free, boxes move back to frame pixels, and one
class-aware NMS across all tiles keeps a defect seen by two overlapping tiles once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig, TilingConfig
from edge.judge.detector.decode import decode_yolov8
from edge.judge.detector.preprocess import Preprocessor
from edge.judge.inspection import Detection
from edge.modelstore.card import ModelCard

RunModel = Callable[[npt.NDArray[np.generic]], npt.NDArray[np.floating]]


def tile_origins(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of tiles covering 0..length, evenly spread, overlapping by at least `overlap`."""
    if length <= size:
        return [0]
    step = max(1, math.floor(size * (1.0 - overlap)))
    count = math.ceil((length - size) / step) + 1
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def tile_grid(width: int, height: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1) over a width x height frame, row by row; edge tiles are full size."""
    return [
        (x0, y0, min(x0 + size, width), min(y0 + size, height))
        for y0 in tile_origins(height, size, overlap)
        for x0 in tile_origins(width, size, overlap)
    ]


def trained_tile_size(card: ModelCard) -> int | None:
    """The tile size the model was trained on, as its card records it (training.args.tiling.size)."""
    tiling = card.training.args.get("tiling")
    size = tiling.get("size") if isinstance(tiling, dict) else None
    return size if isinstance(size, int) and size > 0 else None


@dataclass(frozen=True)
class TiledResult:
    """Merged detections (frame pixels, best first) and the milliseconds each step took over all tiles."""

    detections: tuple[Detection, ...]
    preprocess_ms: float
    infer_ms: float
    decode_ms: float


class Tiler:
    """Runs a detector's model over the tiles of a frame. Build it with `make_tiler`."""

    def __init__(self, card: ModelCard, tiling: TilingConfig, max_detections: int, batch: int) -> None:
        size = tiling.size or trained_tile_size(card)
        if size is None:
            raise LinesideError(
                f"detector.tiling.size: not set, and model {card.name} {card.version} records no training"
                " tile size in its card: give the tile size"
            )
        self.size = size
        self._card = card
        self._overlap = tiling.overlap
        self._max_detections = max_detections
        self._batch = batch
        self._preprocess = Preprocessor(card.input)

    def detect(self, frame: npt.NDArray[np.uint8], floor: float, run: RunModel, label: str) -> TiledResult:
        """Detections over all tiles of `frame` with confidence >= floor, merged across tiles."""
        height, width = frame.shape[:2]
        tiles = tile_grid(width, height, self.size, self._overlap)
        found: list[Detection] = []
        prep_s = infer_s = decode_s = 0.0
        for first in range(0, len(tiles), self._batch):
            chunk = tiles[first : first + self._batch]
            start = time.perf_counter()
            tensors, transforms = [], []
            for x0, y0, x1, y1 in chunk:
                tensor, transform = self._preprocess(frame[y0:y1, x0:x1])
                tensors.append(tensor.copy())  # the preprocessor reuses its buffer
                transforms.append(transform)
            prepared = time.perf_counter()
            outputs = run(np.concatenate(tensors)) if len(tensors) > 1 else run(tensors[0])
            inferred = time.perf_counter()
            for index, (x0, y0, _, _) in enumerate(chunk):
                detections = decode_yolov8(
                    outputs[index : index + 1],
                    transform=transforms[index],
                    class_names=self._card.classes,
                    conf_floor=floor,
                    iou=self._card.thresholds.iou,
                    max_detections=self._max_detections,
                    model=label,
                )
                found += [_shifted(d, x0, y0) for d in detections]
            decode_s += time.perf_counter() - inferred
            prep_s += prepared - start
            infer_s += inferred - prepared
        start = time.perf_counter()
        merged = merge_detections(found, self._card.thresholds.iou, self._max_detections)
        decode_s += time.perf_counter() - start
        return TiledResult(merged, prep_s * 1000.0, infer_s * 1000.0, decode_s * 1000.0)


def make_tiler(card: ModelCard, cfg: DetectorConfig, input_shape: Sequence[Any]) -> Tiler | None:
    """A Tiler when the config asks for tiling (batched when the model's batch dimension is free)."""
    if cfg.tiling is None:
        return None
    batch = 1 if isinstance(input_shape[0], int) else cfg.tiling.max_batch
    return Tiler(card, cfg.tiling, cfg.max_detections, batch)


def _shifted(detection: Detection, dx: int, dy: int) -> Detection:
    x0, y0, x1, y1 = detection.box
    return Detection(
        class_id=detection.class_id,
        class_name=detection.class_name,
        confidence=detection.confidence,
        box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
    )


def merge_detections(detections: Sequence[Detection], iou: float, limit: int) -> tuple[Detection, ...]:
    """Class-aware NMS across tiles: a defect two overlapping tiles both saw is kept once, best first."""
    if not detections:
        return ()
    xywh = np.array([(d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in detections])
    conf = np.array([d.confidence for d in detections], dtype=np.float32)
    classes = np.array([d.class_id for d in detections], dtype=np.int32)
    kept = np.asarray(
        cv2.dnn.NMSBoxesBatched(cast(Any, xywh), cast(Any, conf), cast(Any, classes), -1.0, float(iou)),
        dtype=np.intp,
    ).reshape(-1)
    kept = kept[np.argsort(-conf[kept], kind="stable")][:limit]
    return tuple(detections[int(k)] for k in kept)
