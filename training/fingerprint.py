"""A YOLO-layout data folder checked, fingerprinted and copied (data.yaml only) into a training work dir.

The fingerprint is sha256 over every train/val image's sha256 and its label text, in sorted order; a
bad label line is a LinesideError naming the file and line, never a silently skipped image.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.errors import LinesideError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "val")
Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(f"lineside train: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DatasetSummary:
    """A checked data folder: its work copy of data.yaml, classes, counts and fingerprint."""

    source: Path  # the user's data.yaml (never edited)
    data_yaml: Path  # the work copy, `path:` absolute
    classes: tuple[str, ...]
    images: dict[str, int]  # per split
    boxes: dict[str, int]  # labelled boxes per split
    fingerprint: str

    def describe(self) -> str:
        counts = ", ".join(f"{s} {self.images[s]} images / {self.boxes[s]} boxes" for s in self.images)
        return f"{self.source.parent}: {counts}"


def find_data_yaml(data: Path) -> Path:
    """`data` itself when it is a YAML file, else `data/data.yaml`."""
    candidate = data / "data.yaml" if data.is_dir() else data
    if not candidate.is_file():
        raise LinesideError(f"{candidate}: no data.yaml (a YOLO-layout folder needs one)")
    return candidate.resolve()


def read_data_yaml(data_yaml: Path) -> tuple[dict[str, Any], Path, tuple[str, ...]]:
    """The parsed data.yaml, its dataset root (absolute) and the class names in id order."""
    try:
        raw = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LinesideError(f"{data_yaml}: unreadable data.yaml ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise LinesideError(f"{data_yaml}: expected a mapping with path, train, val and names")
    root = Path(str(raw.get("path") or "."))
    root = root if root.is_absolute() else (data_yaml.parent / root)
    names = raw.get("names")
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise LinesideError(f"{data_yaml}: field 'names': ids must be 0..{len(names) - 1}")
        classes = tuple(str(names[i]) for i in range(len(names)))
    elif isinstance(names, list):
        classes = tuple(str(n) for n in names)
    else:
        raise LinesideError(f"{data_yaml}: field 'names': expected a list or an id -> name mapping")
    if not classes or len(set(classes)) != len(classes):
        raise LinesideError(f"{data_yaml}: field 'names': class names must be non-empty and unique")
    for split in SPLITS:
        if not raw.get(split):
            raise LinesideError(f"{data_yaml}: field '{split}' missing")
    return raw, root.resolve(), classes


def split_images(data_yaml: Path, root: Path, entry: object) -> list[Path]:
    """Images of one split: `entry` is a folder, a .txt list of images, or a list of those."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        path = Path(str(item))
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            images += [p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.suffix == ".txt" and path.is_file():
            for line in path.read_text(encoding="utf-8-sig").split():
                # ultralytics' rule: "./x" is relative to the list file; other relative paths: the root
                base = path.parent if line.startswith("./") else root
                images.append(Path(os.path.normpath(base / line)))
        else:
            raise LinesideError(f"{data_yaml}: split entry {item!r}: no such folder or image list ({path})")
    return sorted(set(images))


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `/images/` in the path becomes `/labels/`, the suffix `.txt`."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def check_label_text(label: Path, text: str, class_count: int) -> int:
    """Number of boxes in a detection label file; LinesideError naming file and line on a bad one."""
    boxes = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label}:{number}"
        if len(fields) != 5:
            raise LinesideError(f"{where}: expected 'class cx cy w h', got {len(fields)} fields: {line!r}")
        try:
            cls, values = int(fields[0]), [float(f) for f in fields[1:]]
        except ValueError:
            raise LinesideError(f"{where}: not numbers: {line!r}") from None
        if not 0 <= cls < class_count:
            raise LinesideError(f"{where}: class {cls} outside 0..{class_count - 1} of data.yaml names")
        cx, cy, w, h = values
        finite = all(math.isfinite(v) for v in values)
        if not finite or not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
            raise LinesideError(f"{where}: box {values} is not normalised to 0..1 with positive size")
        boxes += 1
    return boxes


def _flat_name(image: Path, base: Path) -> str:
    """A unique file name for an image in the work copy: its path below the split's folder, flattened."""
    return "__".join(image.relative_to(base).parts)


def _copy_split(
    split: str, images: list[Path], out: Path, *, class_count: int, digest: Any, progress: Progress
) -> int:
    """Check, hash (image hashes + label text, sorted) and link one split into `out`; return its boxes.

    Images are symlinked and labels copied, so ultralytics' label cache lands in the work dir, never
    beside the user's labels.
    """
    boxes = 0
    base = Path(os.path.commonpath([image.parent for image in images]))
    step = max(100, len(images) // 10)  # about ten lines for a large split, one for a small
    (out / "images" / split).mkdir(parents=True)
    (out / "labels" / split).mkdir(parents=True)
    for index, image in enumerate(images, start=1):
        label = label_path(image)
        try:
            image_hash = hashlib.sha256(image.read_bytes()).digest()
            text = label.read_text(encoding="utf-8") if label.is_file() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise LinesideError(f"{image}: unreadable ({exc})") from None
        boxes += check_label_text(label, text, class_count)
        name = _flat_name(image, base)
        digest.update(f"{split}/{name}\0".encode())
        digest.update(image_hash)
        digest.update(text.encode() + b"\0")
        link = out / "images" / split / name
        if link.is_symlink():
            raise LinesideError(f"{image}: listed twice in split '{split}'")
        link.symlink_to(image)
        (out / "labels" / split / name).with_suffix(".txt").write_text(text, encoding="utf-8")
        if index % step == 0 or index == len(images):
            progress(f"checked {split} {index}/{len(images)} images")
    return boxes


def scan_dataset(data: Path, work: Path, progress: Progress = stderr_progress) -> DatasetSummary:
    """Check every label, fingerprint train + val, and build the work copy `work/data` (data.yaml with
    an absolute path, images linked, labels copied); the user's folder is only read."""
    source = find_data_yaml(data)
    raw, root, classes = read_data_yaml(source)
    out = work.resolve() / "data"
    if out.exists():
        shutil.rmtree(out)  # rebuilt every run: the labels may have been fixed since
    digest = hashlib.sha256()
    images: dict[str, int] = {}
    boxes: dict[str, int] = {}
    for split in SPLITS:
        found = split_images(source, root, raw[split])
        if not found:
            raise LinesideError(f"{source}: split '{split}' has no images under {root}")
        images[split] = len(found)
        boxes[split] = _copy_split(
            split, found, out, class_count=len(classes), digest=digest, progress=progress
        )
    copy = {k: v for k, v in raw.items() if k not in {"download", "test"}}  # never fetch anything
    copy |= {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(classes)),
    }
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(copy, sort_keys=False), encoding="utf-8")
    return DatasetSummary(source, data_yaml, classes, images, boxes, digest.hexdigest())
