"""`lineside dataset import-voc`: Pascal VOC (Annotations/*.xml + JPEGImages/) to the YOLO layout.

Every XML is parsed before anything is written, so a malformed file leaves no half-made dataset; each
problem is one line naming the file.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from training.datasets.layout import IMAGE_SUFFIXES, LabelBox, format_label, write_data_yaml


class VocImportError(LinesideError):
    """One or more VOC files are unusable; `problems` holds one line per file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            problems[0] if len(problems) == 1 else f"{len(problems)} VOC problems: {problems[0]}"
        )
        self.problems = problems


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax as written (1-based pixels)
    difficult: bool


@dataclass(frozen=True)
class VocAnnotation:
    xml: Path
    image: Path
    width: int
    height: int
    objects: tuple[VocObject, ...]


def _text(node: ET.Element, path: str, xml: Path) -> str:
    found = node.findtext(path)
    if found is None or not found.strip():
        raise LinesideError(f"{xml}: missing <{path}>")
    return found.strip()


def _number(node: ET.Element, path: str, xml: Path) -> float:
    text = _text(node, path, xml)
    try:
        return float(text)
    except ValueError:
        raise LinesideError(f"{xml}: <{path}> is {text!r}, not a number") from None


def _find_image(voc_dir: Path, xml: Path, filename: str | None) -> Path:
    images = voc_dir / "JPEGImages"
    if filename:
        candidate = images / Path(filename).name
        if candidate.is_file():
            return candidate
    for suffix in sorted(IMAGE_SUFFIXES):
        candidate = images / f"{xml.stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise LinesideError(f"{xml}: its image {filename or xml.stem} is not in {images}")


def _size(root: ET.Element, xml: Path, image: Path) -> tuple[int, int]:
    size = root.find("size")
    if size is not None and size.findtext("width") and size.findtext("height"):
        width, height = int(_number(size, "width", xml)), int(_number(size, "height", xml))
        if width > 0 and height > 0:
            return width, height
    decoded = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)  # no usable <size>: measure the image
    if decoded is None:
        raise LinesideError(f"{xml}: no <size> and its image {image.name} does not decode")
    return int(decoded.shape[1]), int(decoded.shape[0])


def parse_annotation(voc_dir: Path, xml: Path) -> VocAnnotation:
    """One VOC XML; raises LinesideError naming the file on malformed XML or missing fields."""
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise LinesideError(f"{xml}: malformed XML ({exc})") from None
    except OSError as exc:
        raise LinesideError(f"{xml}: cannot read ({exc.strerror or exc})") from None
    if root.tag != "annotation":
        raise LinesideError(f"{xml}: root element is <{root.tag}>, expected <annotation>")
    image = _find_image(voc_dir, xml, root.findtext("filename"))
    width, height = _size(root, xml, image)
    objects = []
    for i, obj in enumerate(root.findall("object"), 1):
        name = _text(obj, "name", xml)
        bnd = obj.find("bndbox")
        if bnd is None:
            raise LinesideError(f"{xml}: object {i} ({name}) has no <bndbox>")
        box = tuple(_number(bnd, key, xml) for key in ("xmin", "ymin", "xmax", "ymax"))
        if not (box[0] <= box[2] and box[1] <= box[3]):
            raise LinesideError(f"{xml}: object {i} ({name}) has xmax < xmin or ymax < ymin: {box}")
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append(VocObject(name, (box[0], box[1], box[2], box[3]), difficult))
    return VocAnnotation(xml, image, width, height, tuple(objects))


def to_yolo(obj: VocObject, cls: int, width: int, height: int) -> LabelBox:
    """VOC pixels are 1-based and inclusive: the box covers [xmin - 1, xmax) in 0-based pixel edges."""
    x0, y0 = max(obj.box[0] - 1, 0.0), max(obj.box[1] - 1, 0.0)
    x1, y1 = min(obj.box[2], float(width)), min(obj.box[3], float(height))
    return LabelBox(cls, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)


def _splits(voc_dir: Path, stems: list[str]) -> dict[str, str]:
    """stem -> split from ImageSets/Main/{train,val,test}.txt when present, else everything is train."""
    main = voc_dir / "ImageSets" / "Main"
    chosen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        listing = main / f"{split}.txt"
        if listing.is_file():
            for line in listing.read_text(encoding="utf-8").split("\n"):
                if line.strip():
                    chosen.setdefault(line.split()[0], split)
    return {stem: chosen.get(stem, "train") if chosen else "train" for stem in stems}


@dataclass(frozen=True)
class VocImportResult:
    out: Path
    names: tuple[str, ...]
    images: dict[str, int]
    boxes: int
    skipped_objects: dict[str, int]  # class name -> objects not in --classes


def import_voc(
    voc_dir: Path, out: Path, classes: tuple[str, ...] | None = None, skip_difficult: bool = False
) -> VocImportResult:
    """Convert; with `classes` the class order is fixed and other classes are skipped and counted."""
    xmls = sorted((voc_dir / "Annotations").glob("*.xml"))
    if not xmls:
        raise LinesideError(f"{voc_dir / 'Annotations'}: no .xml annotations")
    if out.exists() and any(out.iterdir()):
        raise LinesideError(f"{out}: output folder is not empty")
    annotations, problems = [], []
    for xml in xmls:
        try:
            annotations.append(parse_annotation(voc_dir, xml))
        except LinesideError as exc:
            problems.append(str(exc))
    if problems:
        raise VocImportError(problems)
    names = classes or tuple(sorted({o.name for a in annotations for o in a.objects}))
    if not names:
        raise LinesideError(f"{voc_dir}: no objects and no --classes: cannot name any class")
    index = {name: i for i, name in enumerate(names)}
    splits = _splits(voc_dir, [a.xml.stem for a in annotations])
    images: dict[str, int] = {}
    skipped: dict[str, int] = {}
    boxes = 0
    for ann in annotations:
        split = splits[ann.xml.stem]
        lines = []
        for obj in ann.objects:
            if obj.name not in index:
                skipped[obj.name] = skipped.get(obj.name, 0) + 1
            elif not (skip_difficult and obj.difficult):
                lines.append(format_label(to_yolo(obj, index[obj.name], ann.width, ann.height)))
        target = out / "images" / split / f"{ann.xml.stem}{ann.image.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ann.image, target)
        atomic_write_text(out / "labels" / split / f"{ann.xml.stem}.txt", "".join(f"{x}\n" for x in lines))
        images[split] = images.get(split, 0) + 1
        boxes += len(lines)
    order = tuple(s for s in ("train", "val", "test") if s in images)
    write_data_yaml(out, names, order, f"Imported from Pascal VOC {voc_dir}.")
    return VocImportResult(out, names, images, boxes, skipped)
