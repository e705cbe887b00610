"""A labelled YOLO-layout split read for evaluation: images, truth boxes in pixels, part-level truth.

A part is defective when parts.csv says `reject` (when the data set has one), else when its label file
holds boxes. Bad labels raise LinesideError naming the file and line.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.errors import LinesideError
from training.metrics import ImageBoxes
from training.scoring import IMAGE_SUFFIXES


@dataclass(frozen=True)
class SplitItem:
    """One image of the split: where it is, its label file, and whether the part is defective."""

    image: Path
    label: Path
    defective: bool


@dataclass(frozen=True)
class Split:
    """The images of one split, the data set's class names and where part-level truth came from."""

    data_dir: Path
    name: str
    items: tuple[SplitItem, ...]
    classes: tuple[str, ...] | None
    truth_source: str  # "parts.csv" or "labels"


def dataset_classes(data_dir: Path) -> tuple[str, ...] | None:
    """Class names from data.yaml (`names` as a list or an id -> name map); None without a data.yaml."""
    path = data_dir / "data.yaml"
    if not path.is_file():
        return None
    try:
        names = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("names")
    except (OSError, yaml.YAMLError) as exc:
        raise LinesideError(f"{path}: unreadable data set description ({exc})") from None
    if isinstance(names, dict):
        return tuple(str(names[k]) for k in sorted(names, key=int))
    if isinstance(names, list):
        return tuple(str(n) for n in names)
    raise LinesideError(f"{path}: field 'names' is missing or not a list/map of class names")


def _csv_decisions(data_dir: Path, split: str) -> dict[str, bool] | None:
    path = data_dir / "parts.csv"
    if not path.is_file():
        return None
    decisions: dict[str, bool] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("split", split) != split:
                continue
            decision = (row.get("decision") or "").strip().lower()
            if decision not in {"accept", "reject"}:
                raise LinesideError(
                    f"{path}: image {row.get('image')!r}: decision {decision!r} is not accept/reject"
                )
            decisions[Path(row.get("image") or "").name] = decision == "reject"
    return decisions


def read_split(data_dir: Path, split: str) -> Split:
    """The split's images in name order with their part-level truth."""
    images = data_dir / "images" / split
    if not images.is_dir():
        raise LinesideError(f"{images}: no such split folder")
    decisions = _csv_decisions(data_dir, split)
    items = []
    for image in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = data_dir / "labels" / split / (image.stem + ".txt")
        if decisions is not None:
            if image.name not in decisions:
                raise LinesideError(f"{data_dir / 'parts.csv'}: no row for {split} image {image.name}")
            defective = decisions[image.name]
        else:
            defective = label.is_file() and bool(label.read_text(encoding="utf-8").strip())
        items.append(SplitItem(image, label, defective))
    if not items:
        raise LinesideError(f"{images}: no images")
    source = "parts.csv" if decisions is not None else "labels"
    return Split(data_dir, split, tuple(items), dataset_classes(data_dir), source)


def read_truth(label: Path, width: int, height: int, n_classes: int) -> ImageBoxes:
    """Truth boxes in pixels from a YOLO label file (boxes, or polygons taken as their bounding box)."""
    if not label.is_file():
        return ImageBoxes.of([], [])
    classes: list[int] = []
    boxes: list[list[float]] = []
    for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise LinesideError(f"{label}: line {number}: not 'class cx cy w h'") from None
        if not 0 <= cls < n_classes or len(values) < 4 or (len(values) > 4 and len(values) % 2):
            raise LinesideError(f"{label}: line {number}: class {cls} or {len(values)} coordinates invalid")
        if len(values) == 4:
            cx, cy, w, h = values
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        else:
            xs, ys = values[0::2], values[1::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        classes.append(cls)
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
    return ImageBoxes.of(classes, boxes)


def split_fingerprint(split: Split) -> str:
    """sha256 over every image's name, sha256 and label text, in name order (what this split was)."""
    digest = hashlib.sha256()
    for item in split.items:
        digest.update(item.image.name.encode())
        digest.update(hashlib.sha256(item.image.read_bytes()).digest())
        digest.update(item.label.read_bytes() if item.label.is_file() else b"<no label>")
    return digest.hexdigest()


def check_classes(split: Split, card_classes: tuple[str, ...]) -> None:
    """Refuse a data set whose class names differ from the model's (the AP would compare apples to pears)."""
    if split.classes is not None and split.classes != card_classes:
        raise LinesideError(
            f"{split.data_dir / 'data.yaml'}: classes {list(split.classes)} differ from the model's"
            f" {list(card_classes)}"
        )
