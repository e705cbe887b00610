"""Cut a YOLO dataset into overlapping tiles for small defects on large frames (labels clipped per tile).

The tile grid is edge's own (edge/judge/detector/tiling.py), so training sees the tiles
the appliance will cut.
A box cut by a tile edge is kept, clipped, when at least `min_visibility` of its area is inside the tile.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.errors import LinesideError
from edge.judge.detector.tiling import tile_grid
from training.fingerprint import (
    SPLITS,
    DatasetSummary,
    Progress,
    label_path,
    read_data_yaml,
    split_images,
    stderr_progress,
)

PixelBox = tuple[int, float, float, float, float]  # class, x0, y0, x1, y1 in frame pixels


def read_pixel_boxes(label: Path, width: int, height: int) -> list[PixelBox]:
    """A (checked) YOLO label file as boxes in frame pixels; no file means no boxes."""
    if not label.is_file():
        return []
    boxes: list[PixelBox] = []
    for line in label.read_text(encoding="utf-8").splitlines():
        if line.split():
            cls, cx, cy, w, h = (float(v) for v in line.split())
            boxes.append(
                (
                    int(cls),
                    (cx - w / 2) * width,
                    (cy - h / 2) * height,
                    (cx + w / 2) * width,
                    (cy + h / 2) * height,
                )
            )
    return boxes


def tile_labels(
    boxes: Sequence[PixelBox], tile: tuple[int, int, int, int], min_visibility: float
) -> list[tuple[int, float, float, float, float]]:
    """Boxes inside `tile` (x0, y0, x1, y1) as YOLO labels of the tile, clipped to it; boxes with less
    than `min_visibility` of their area inside are dropped."""
    tx0, ty0, tx1, ty1 = tile
    width, height = tx1 - tx0, ty1 - ty0
    labels = []
    for cls, x0, y0, x1, y1 in boxes:
        cx0, cy0, cx1, cy1 = max(x0, tx0), max(y0, ty0), min(x1, tx1), min(y1, ty1)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        area = max((x1 - x0) * (y1 - y0), 1e-9)
        if (cx1 - cx0) * (cy1 - cy0) / area < min_visibility:
            continue
        labels.append(
            (
                cls,
                ((cx0 + cx1) / 2 - tx0) / width,
                ((cy0 + cy1) / 2 - ty0) / height,
                (cx1 - cx0) / width,
                (cy1 - cy0) / height,
            )
        )
    return labels


def _tile_image(image: Path, out: Path, split: str, *, size: int, overlap: float, vis: float) -> int:
    """Write the tiles of one image and their labels; return how many tiles."""
    pixels = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise LinesideError(f"{image}: not a readable image")
    height, width = pixels.shape[:2]
    boxes = read_pixel_boxes(label_path(image), width, height)
    tiles = tile_grid(width, height, size, overlap)
    for x0, y0, x1, y1 in tiles:
        name = f"{image.stem}__x{x0}_y{y0}"  # the work copy holds each split flat: stems are unique
        if not cv2.imwrite(
            str(out / "images" / split / f"{name}.png"), np.ascontiguousarray(pixels[y0:y1, x0:x1])
        ):
            raise OSError(f"{out}: could not write tile {name}.png")
        text = "".join(
            f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
            for c, cx, cy, w, h in tile_labels(boxes, (x0, y0, x1, y1), vis)
        )
        (out / "labels" / split / f"{name}.txt").write_text(text, encoding="utf-8")
    return len(tiles)


def tile_dataset(
    summary: DatasetSummary,
    work: Path,
    *,
    size: int,
    overlap: float,
    min_visibility: float,
    progress: Progress = stderr_progress,
) -> Path:
    """Tile the train and val splits into `work/tiles`; return its data.yaml (reused when complete)."""
    out = work / "tiles"
    stamp = out / "complete.json"
    wanted = {
        "fingerprint": summary.fingerprint,
        "size": size,
        "overlap": overlap,
        "min_visibility": min_visibility,
    }
    data_yaml = out / "data.yaml"
    if stamp.is_file() and data_yaml.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        return data_yaml
    if out.exists():
        shutil.rmtree(out)  # a half-written or different tiling
    raw, root, classes = read_data_yaml(summary.data_yaml)
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
        images = split_images(summary.data_yaml, root, raw[split])
        count = sum(
            _tile_image(image, out, split, size=size, overlap=overlap, vis=min_visibility) for image in images
        )
        progress(f"tiled {split}: {len(images)} images -> {count} tiles of {size} px")
    tiled = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(classes)),
    }
    data_yaml.write_text(yaml.safe_dump(tiled, sort_keys=False), encoding="utf-8")
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return data_yaml
