"""Seeded renderer of camera-like frames of machined parts with scratches, pits and chips.

The demo model and the demo replay frames are made from these renders, so both are redistributable.
numpy and OpenCV only: this module must run without the training extra (no torch).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from training.synth_surface import FloatImage, Part, background, grid, make_part, metal_surface, soft

CLASSES: tuple[str, ...] = ("scratch", "pit", "chip")
GOOD_FRACTION = 0.4
PNG_LEVEL = 9

Label = tuple[int, float, float, float, float]
_PLACE_TRIES = 60


@dataclass(frozen=True)
class _Box:
    """A defect's box in pixels (x0, y0 inclusive, x1, y1 exclusive)."""

    cls: int
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: _Box, margin: float) -> bool:
        return not (
            self.x1 + margin < other.x0
            or other.x1 + margin < self.x0
            or self.y1 + margin < other.y0
            or other.y1 + margin < self.y0
        )


def _box_of(cls: int, xs: np.ndarray, ys: np.ndarray, pad: float, min_size: float) -> _Box:
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    half_w = max((xs.max() - xs.min()) / 2 + pad, min_size / 2)
    half_h = max((ys.max() - ys.min()) / 2 + pad, min_size / 2)
    return _Box(cls, float(cx - half_w), float(cy - half_h), float(cx + half_w), float(cy + half_h))


def _free(box: _Box, taken: list[_Box]) -> bool:
    return not any(box.overlaps(other, 6.0) for other in taken)


def _scratch(rng: np.random.Generator, metal: FloatImage, safe: np.ndarray, taken: list[_Box]) -> _Box | None:
    """A thin, slightly curved line 20-120 px long, darker or brighter than the metal."""
    height, width = safe.shape
    for _ in range(_PLACE_TRIES):
        length = rng.uniform(20, 120)
        heading = rng.uniform(0, np.pi)
        start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        normal = np.array([-np.sin(heading), np.cos(heading)])
        bend = (start + end) / 2 + rng.uniform(-0.12, 0.12) * length * normal
        t = np.linspace(0, 1, 24)[:, None]
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end
        cols, rows = np.round(curve[:, 0]).astype(int), np.round(curve[:, 1]).astype(int)
        if cols.min() < 0 or rows.min() < 0 or cols.max() >= width or rows.max() >= height:
            continue
        if not safe[rows, cols].all():
            continue
        thickness = int(rng.choice([2, 2, 3]))
        box = _box_of(0, curve[:, 0], curve[:, 1], thickness / 2 + 2, 8)
        if not _free(box, taken):
            continue
        mask = np.zeros(safe.shape, np.uint8)
        cv2.polylines(mask, [np.round(curve * 4).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, 2)
        alpha = mask.astype(np.float32) / 255 * rng.uniform(0.75, 1.0)
        target = metal * rng.uniform(0.35, 0.6) if rng.random() < 0.6 else metal * 0 + rng.uniform(225, 250)
        metal[:] = metal * (1 - alpha) + target * alpha
        return box
    return None


def _pit(rng: np.random.Generator, metal: FloatImage, safe: np.ndarray, taken: list[_Box]) -> _Box | None:
    """A small dark round crater 5-14 px across with a lit rim on one side."""
    height, width = safe.shape
    for _ in range(_PLACE_TRIES):
        radius = rng.uniform(2.5, 7.0)
        cx, cy = rng.uniform(10, width - 10), rng.uniform(10, height - 10)
        r_check = int(radius + 3)
        row, col = int(cy), int(cx)
        if not safe[row - r_check : row + r_check + 1, col - r_check : col + r_check + 1].all():
            continue
        box = _box_of(1, np.array([cx]), np.array([cy]), radius + 2, 0)
        if not _free(box, taken):
            continue
        x0, y0 = int(cx) - r_check, int(cy) - r_check
        ys, xs = np.mgrid[y0 : int(cy) + r_check + 1, x0 : int(cx) + r_check + 1].astype(np.float32)
        dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        crater = np.clip(radius + 0.5 - dist, 0, 1)
        # a raised burr around the crater: lit on the side facing the light, shaded opposite
        facing = np.cos(np.arctan2(ys - cy, xs - cx) - rng.uniform(0, 2 * np.pi))
        rim = np.clip(1.5 - np.abs(dist - radius - 1.0), 0, 1) * (1 - crater)
        patch = metal[y0 : y0 + xs.shape[0], x0 : x0 + xs.shape[1]]
        patch *= 1 - crater * rng.uniform(0.65, 0.85)
        patch += rim * facing * rng.uniform(25, 50)
        return box
    return None


def _chip(rng: np.random.Generator, part: Part, taken: list[_Box]) -> tuple[_Box, np.ndarray] | None:
    """A bite out of the outer edge: an irregular polygon removed from the part, showing background."""
    height, width = part.outline_sdf.shape
    edge_rows, edge_cols = np.nonzero(np.abs(part.outline_sdf) < 0.7)
    for _ in range(_PLACE_TRIES):
        pick = int(rng.integers(len(edge_rows)))
        px, py = float(edge_cols[pick]), float(edge_rows[pick])
        size = rng.uniform(10, 24)
        outward = np.array([px - part.center[0], py - part.center[1]])
        outward /= np.linalg.norm(outward) + 1e-6
        cx, cy = np.array([px, py]) + outward * size * rng.uniform(0.0, 0.35)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(7, 12))))
        radii = size * rng.uniform(0.6, 1.1, len(angles))
        polygon = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        bite = np.zeros((height, width), np.uint8)
        cv2.fillPoly(bite, [np.round(polygon * 4).astype(np.int32)], 255, cv2.LINE_AA, 2)
        removed = (bite > 127) & (part.outline_sdf < 0) & (part.holes_sdf > 0)
        if removed.sum() < 60:
            continue
        rows, cols = np.nonzero(removed)
        box = _box_of(2, cols.astype(np.float32), rows.astype(np.float32), 2, 8)
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height or not _free(box, taken):
            continue
        return box, bite.astype(np.float32) / 255
    return None


def _add_defects(
    rng: np.random.Generator, part: Part, metal: FloatImage, count: int
) -> tuple[list[_Box], FloatImage]:
    """Place `count` defects; returns their boxes and the coverage of material bitten off by chips."""
    bitten = np.zeros(part.outline_sdf.shape, np.float32)
    taken: list[_Box] = []
    for cls in rng.integers(0, len(CLASSES), count):
        if cls == 2:
            chip = _chip(rng, part, taken)
            if chip is not None:
                taken.append(chip[0])
                np.maximum(bitten, chip[1], out=bitten)
            continue
        margin = 5.0
        bitten_near = cv2.dilate((bitten > 0).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        safe = (part.outline_sdf < -margin) & (part.holes_sdf > margin) & ~bitten_near
        place = _scratch if cls == 0 else _pit
        box = place(rng, metal, safe, taken)
        if box is not None:
            taken.append(box)
    return taken, bitten


def _stain(rng: np.random.Generator, metal: FloatImage) -> None:
    """A faint oil stain: a harmless blotch the model must learn to ignore."""
    height, width = metal.shape[:2]
    blotch = np.zeros((height, width), np.float32)
    center = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
    axes = (int(rng.uniform(15, 50)), int(rng.uniform(10, 35)))
    cv2.ellipse(blotch, center, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    soft_blotch = cv2.GaussianBlur(blotch, (0, 0), rng.uniform(6, 14))
    metal *= 1 - soft_blotch * rng.uniform(0.04, 0.1)


def _compose(rng: np.random.Generator, part: Part, metal: FloatImage, bitten: FloatImage) -> np.ndarray:
    """Lay the part on the belt with shadow, edge shading, lighting falloff, exposure and sensor noise."""
    height, width = bitten.shape
    belt = background(rng, width, height)
    outline = soft(part.outline_sdf) * (1 - bitten)
    solid = outline * (1 - soft(part.holes_sdf))
    shift = np.array([[1, 0, rng.uniform(3, 10)], [0, 1, rng.uniform(3, 10)]], np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(solid, shift, (width, height)), (0, 0), 6)
    belt *= 1 - 0.45 * shadow
    belt *= 1 - 0.65 * outline * soft(part.holes_sdf)  # through holes look onto the shadowed belt
    relief = cv2.GaussianBlur(solid, (0, 0), 1.5)
    light = rng.uniform(0, 2 * np.pi)
    slope_x, slope_y = cv2.Sobel(relief, cv2.CV_32F, 1, 0), cv2.Sobel(relief, cv2.CV_32F, 0, 1)
    shade = slope_x * np.cos(light) + slope_y * np.sin(light)
    metal = metal + shade * rng.uniform(25, 45) * solid
    image = metal * solid + belt * (1 - solid)
    xs, ys = grid(width, height)
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    lighting = 1 + gx * (xs / width - 0.5) + gy * (ys / height - 0.5)
    vignette = 1 - rng.uniform(0.05, 0.25) * (((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2) / 0.5)
    image *= lighting * vignette * rng.uniform(0.75, 1.2)
    image += rng.normal(0, rng.uniform(0.8, 2.0), (height, width)).astype(np.float32)
    grey = np.clip(np.round(image), 0, 255).astype(np.uint8)
    frame: np.ndarray = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)  # a monochrome camera
    return frame


def _to_labels(boxes: list[_Box], width: int, height: int) -> list[Label]:
    labels: list[Label] = []
    for box in boxes:
        x0, x1 = max(box.x0, 0.0), min(box.x1, float(width))
        y0, y1 = max(box.y0, 0.0), min(box.y1, float(height))
        labels.append(
            (box.cls, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
        )
    return labels


def render_part(
    rng: np.random.Generator, defective: bool | None = None, size: tuple[int, int] = (640, 480)
) -> tuple[np.ndarray, list[Label]]:
    """Render one frame (BGR uint8, `size` is width x height) and its YOLO labels (class, cx, cy, w, h).

    `defective=None` draws it: about 40% of parts are good. A defective part gets 1-3 defects; a
    placement that finds no room is skipped, but a defective part always keeps at least one.
    """
    width, height = size
    if defective is None:
        defective = bool(rng.random() >= GOOD_FRACTION)
    part = make_part(rng, width, height)
    metal = metal_surface(rng, part, width, height)
    if rng.random() < 0.3:
        _stain(rng, metal)
    boxes: list[_Box] = []
    bitten = np.zeros((height, width), np.float32)
    if defective:
        for _ in range(_PLACE_TRIES):  # a failed placement leaves the metal untouched: try again
            boxes, bitten = _add_defects(rng, part, metal, int(rng.integers(1, 4)))
            if boxes:
                break
        else:
            raise RuntimeError("render_part: found no room for a defect on this part")
    image = _compose(rng, part, metal, bitten)
    return image, _to_labels(boxes, width, height)


def _write_png(path: Path, image: np.ndarray, level: int) -> None:
    """Write a frame; a monochrome frame (B = G = R) is stored as 8-bit grey, a third of the size.

    `cv2.imread` (IMREAD_COLOR, its default) reads it back as the same BGR frame.
    """
    channels = cv2.split(image)
    if all(np.array_equal(channels[0], other) for other in channels[1:]):
        image = channels[0]
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, level]):
        raise OSError(f"{path}: could not write image")


def _label_text(labels: list[Label]) -> str:
    return "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in labels)


def write_dataset(out_dir: Path, n_train: int, n_val: int, seed: int) -> Path:
    """Write a YOLO-layout dataset of rendered parts and return its `data.yaml` path.

    Each image has its own seed (seed, split, index), so the set is the same however it is generated.
    """
    out_dir = Path(out_dir).resolve()
    for split_id, (split, count) in enumerate((("train", n_train), ("val", n_val))):
        images, labels = out_dir / "images" / split, out_dir / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, split_id, index])
            image, boxes = render_part(rng)
            stem = f"part_{index:05d}"
            _write_png(images / f"{stem}.png", image, 1)
            (labels / f"{stem}.txt").write_text(_label_text(boxes), encoding="utf-8")
    data = {
        "path": str(out_dir),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASSES)),
    }
    data_yaml = out_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return data_yaml


def dataset_fingerprint(dataset_dir: Path) -> str:
    """sha256 over every image's sha256 and its label text, in sorted path order."""
    digest = hashlib.sha256()
    root = Path(dataset_dir)
    for image in sorted((root / "images").rglob("*.png")):
        relative = image.relative_to(root / "images")
        label = (root / "labels" / relative).with_suffix(".txt")
        digest.update(str(relative).encode())
        digest.update(hashlib.sha256(image.read_bytes()).digest())
        digest.update(label.read_bytes() if label.exists() else b"<no label>")
    return digest.hexdigest()


def write_demo_parts(out_dir: Path, count: int, seed: int) -> Path:
    """Render the demo replay frames `part_0001.png`... and `truth.csv` (file, decision, classes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    for index in range(1, count + 1):
        image, labels = render_part(np.random.default_rng([seed, index]))
        name = f"part_{index:04d}.png"
        _write_png(out_dir / name, image, PNG_LEVEL)
        present = {CLASSES[label[0]] for label in labels}
        classes = ";".join(name for name in CLASSES if name in present)
        rows.append((name, "reject" if labels else "accept", classes))
    truth = out_dir / "truth.csv"
    with truth.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file", "decision", "classes"))
        writer.writerows(rows)
    return truth
