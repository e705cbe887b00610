"""Scores a labelled YOLO-layout split through the runtime's own detector (no train/serve skew)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from edge.errors import LinesideError
from edge.judge.detector.detector import Detector
from edge.judge.thresholds import ScoredPart
from edge.sources.config import SourceConfig
from edge.sources.imagecheck import read_image_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
FLOOR = 0.01  # report weak detections too, so thresholds can be chosen below the card's floor


def labelled_images(data_dir: Path, split: str) -> Iterator[tuple[Path, bool]]:
    """(image, defective) for every image of a split; an empty or missing label file is a good part."""
    images = data_dir / "images" / split
    if not images.is_dir():
        raise LinesideError(f"{images}: no such split folder")
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = data_dir / "labels" / split / (image.stem + ".txt")
        defective = label.is_file() and bool(label.read_text(encoding="utf-8").strip())
        yield image, defective


def score_split(detector: Detector, data_dir: Path, split: str, progress: bool = True) -> list[ScoredPart]:
    """Every image of the split judged by `detector` at a low floor, with its truth."""
    items = list(labelled_images(data_dir, split))
    source_cfg = SourceConfig(kind="folder", path=data_dir / "images" / split)
    parts: list[ScoredPart] = []
    for i, (image_path, defective) in enumerate(items, 1):
        image = read_image_file(image_path, source_cfg)
        result = detector.detect(image, conf_floor=FLOOR)
        parts.append(ScoredPart.from_detections(image_path.name, defective, result.detections))
        if progress and (i % 50 == 0 or i == len(items)):
            print(f"scored {i}/{len(items)} images of {split}", file=sys.stderr, flush=True)
    return parts
