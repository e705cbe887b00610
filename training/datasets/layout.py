"""The YOLO detection dataset layout: data.yaml, its splits, image/label pairing and label-line parsing.

Shared by `dataset check`, `dataset split` and the importers, so they all agree on what a dataset is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.atomic import atomic_write_text
from edge.errors import LinesideError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
SPLIT_KEYS = ("train", "val", "test")
EDGE_TOLERANCE = 1e-3  # boxes derived from masks touch the border; float rounding must not fail them


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset folder as data.yaml describes it: class names and the images folder of each split."""

    root: Path
    names: tuple[str, ...]
    splits: dict[str, Path]  # split name -> images folder

    def labels_dir(self, split: str) -> Path:
        return labels_dir_for(self.splits[split])


@dataclass(frozen=True)
class LabelBox:
    """One label line: class id and normalised centre/size."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float


def labels_dir_for(images_dir: Path) -> Path:
    """Ultralytics' rule: the last `images` folder in the path becomes `labels`."""
    parts = list(images_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    raise LinesideError(f"{images_dir}: an images folder must have 'images' in its path (YOLO layout)")


def label_path_for(image: Path, images_dir: Path, labels_dir: Path) -> Path:
    return labels_dir / image.relative_to(images_dir).with_suffix(".txt")


def _names_from(data: Mapping[str, Any], data_yaml: Path) -> tuple[str, ...]:
    names = data.get("names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        result = tuple(names)
    elif isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise LinesideError(f"{data_yaml}: names keys must be class ids 0..n-1") from None
        if ids != list(range(len(ids))):
            raise LinesideError(f"{data_yaml}: names ids must be 0..{len(ids) - 1} without gaps, got {ids}")
        result = tuple(str(names[k]) for k in sorted(names, key=int))
    else:
        raise LinesideError(f"{data_yaml}: 'names' must be a list or a {{id: name}} mapping")
    if not result:
        raise LinesideError(f"{data_yaml}: 'names' is empty")
    nc = data.get("nc")
    if nc is not None and nc != len(result):
        raise LinesideError(f"{data_yaml}: nc is {nc} but names has {len(result)} classes")
    return result


def read_layout(root: Path) -> DatasetLayout:
    """Read `root/data.yaml`; split folders are taken relative to `root` (its `path:` is ignored)."""
    data_yaml = root / "data.yaml"
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LinesideError(f"{data_yaml}: no data.yaml (not a YOLO dataset folder)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LinesideError(f"{data_yaml}: unreadable ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise LinesideError(f"{data_yaml}: must be a YAML mapping")
    names = _names_from(data, data_yaml)
    splits: dict[str, Path] = {}
    for key in SPLIT_KEYS:
        entry = data.get(key)
        if entry is None:
            continue
        if not isinstance(entry, str):
            raise LinesideError(f"{data_yaml}: '{key}' must be one folder path (lists are not supported)")
        folder = root / entry
        if not folder.is_dir():
            raise LinesideError(f"{data_yaml}: split '{key}' folder {folder} does not exist")
        labels_dir_for(folder)  # fail now if it is not a YOLO images folder
        splits[key] = folder
    if not splits:
        raise LinesideError(f"{data_yaml}: names no split (train/val/test)")
    return DatasetLayout(root=root, names=names, splits=splits)


def list_images(images_dir: Path) -> list[Path]:
    """Image files under a split folder (recursively), sorted for a reproducible order."""
    return sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def parse_label_line(line: str, nc: int) -> LabelBox:
    """One `class cx cy w h` line; raises ValueError with the reason (the caller adds file and line)."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (class cx cy w h), got {len(fields)}")
    try:
        cls = int(fields[0])
    except ValueError:
        raise ValueError(f"class id {fields[0]!r} is not an integer") from None
    try:
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError:
        raise ValueError(f"coordinates {' '.join(fields[1:])!r} are not numbers") from None
    if not 0 <= cls < nc:
        raise ValueError(f"class id {cls} out of range (nc={nc})")
    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
        raise ValueError("coordinates must be finite")
    if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
        raise ValueError(f"coordinates outside [0, 1]: {cx:g} {cy:g} {w:g} {h:g}")
    if w <= 0.0 or h <= 0.0:
        raise ValueError(f"zero-size box (w={w:g}, h={h:g})")
    tol = EDGE_TOLERANCE
    if cx - w / 2 < -tol or cx + w / 2 > 1 + tol or cy - h / 2 < -tol or cy + h / 2 > 1 + tol:
        raise ValueError(f"box extends outside the image: {cx:g} {cy:g} {w:g} {h:g}")
    return LabelBox(cls, cx, cy, w, h)


def read_label_file(path: Path, nc: int) -> Iterator[tuple[int, LabelBox | ValueError]]:
    """(line number, box or the reason it is bad) for every non-blank line; OSError if unreadable."""
    text = path.read_text(encoding="utf-8", errors="strict")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, parse_label_line(line, nc)
        except ValueError as exc:
            yield number, exc


def format_label(box: LabelBox) -> str:
    return f"{box.cls} {box.cx:.6f} {box.cy:.6f} {box.w:.6f} {box.h:.6f}"


def write_data_yaml(root: Path, names: tuple[str, ...], splits: tuple[str, ...], comment: str) -> Path:
    """A data.yaml with `path: .` and the given splits (images/<split>)."""
    data: dict[str, Any] = {"path": "."}
    for split in splits:
        data[split] = f"images/{split}"
    data["nc"] = len(names)
    data["names"] = dict(enumerate(names))
    target = root / "data.yaml"
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    atomic_write_text(target, header + yaml.safe_dump(data, sort_keys=False))
    return target
