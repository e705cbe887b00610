"""Part-level data for the classify kind: which images, which class, the exact tensors the appliance feeds.

Two layouts: YOLO (`images/<split>`, `labels/<split>`: a part is "defect" when its label file holds a box,
or as parts.csv says; via training.evaldata.read_split) and folder-per-class (`<split>/<class>/*.png`, one
folder named "good"). Factory augmentation (training/augment.py) runs on the original image; the result is
then letterboxed by edge's own Preprocessor, so training, evaluation and the appliance see the same input.

Input size: a fixed square letterbox keeps the aspect (tiles are padded, never stretched). Measured on the
real magnetic-tile set (1139 train+val tiles, 103-632 px wide, 222-403 px high, aspect 0.36-2.7, median
long side 354 px): at 256 the median tile is scaled by 0.72, only 2% are upscaled, and the median defect
box keeps a 13 px short side (5% fall under 3.5 px); 224 would shrink the median tile to 0.63, and 320 would
upscale a third of the tiles for 1.56x the compute. So the default is 256 (`imgsz`); raise it for pin-hole
sized defects.

Crops (`crop`): small defects on large parts (DeepPCB: ~35 px on 640 px tiles) vanish when the whole part
is scaled to a size a CPU can train at. With a crop size, each training image is first placed exactly as
the appliance places it (the letterbox canvas at `imgsz`), then a `crop` x `crop` window of that canvas is
taken: around one of its defects (a defective part) or anywhere on the part (a good part). The network
trains at the crop's cost and sees defects at the appliance's scale; the exported model, with the `max`
pool (classify_export), judges the whole canvas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from edge.errors import LinesideError
from edge.judge.detector.preprocess import Preprocessor
from edge.modelstore.card import InputSpec
from training.evaldata import read_split, read_truth
from training.scoring import IMAGE_SUFFIXES

if TYPE_CHECKING:  # albumentations is imported only once training has gone offline (training.train)
    import albumentations as A  # noqa: N812 (the library's own convention)

GOOD = "good"
BINARY_CLASSES = (GOOD, "defect")
Layout = Literal["yolo", "folders"]
Frame = npt.NDArray[np.uint8]
_NO_BOXES = np.zeros((0, 5), np.float64)


@dataclass(frozen=True)
class PartImage:
    """One part: its image, its class index (0 = good) and, in the YOLO layout, its label file."""

    image: Path
    label: int
    boxes_file: Path | None = None


@dataclass(frozen=True)
class PartSet:
    """The parts of one split and the class names they index (classes[0] == "good")."""

    root: Path
    split: str
    layout: Layout
    classes: tuple[str, ...]
    items: tuple[PartImage, ...]

    def counts(self) -> dict[str, int]:
        return {name: sum(item.label == i for item in self.items) for i, name in enumerate(self.classes)}

    def describe(self) -> str:
        counts = ", ".join(f"{name} {count}" for name, count in self.counts().items())
        return f"{self.split}: {len(self.items)} parts ({counts})"


def input_spec(imgsz: int) -> InputSpec:
    """The card's input section: a square RGB letterbox scaled 1/255, padded with grey 114."""
    return InputSpec(width=imgsz, height=imgsz, color="RGB", scale=1.0 / 255.0, pad_value=114)


def detect_layout(data: Path) -> Layout:
    """YOLO when `data` has images/ or a data.yaml, folder-per-class when it has train/good/."""
    if (data / "images").is_dir() or (data / "data.yaml").is_file():
        return "yolo"
    if (data / "train" / GOOD).is_dir():
        return "folders"
    raise LinesideError(
        f"{data}: neither a YOLO layout (images/<split>, labels/<split>) nor folder-per-class"
        f" (<split>/{GOOD}/*.png, <split>/<defect class>/*.png)"
    )


def _folder_classes(data: Path) -> tuple[str, ...]:
    train = data / "train"
    defects = sorted(p.name for p in train.iterdir() if p.is_dir() and p.name != GOOD)
    if not defects:
        raise LinesideError(f"{train}: folder-per-class needs '{GOOD}' and at least one defect class folder")
    return (GOOD, *defects)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_folders(data: Path, split: str) -> PartSet:
    classes = _folder_classes(data)
    root = data / split
    if not root.is_dir():
        raise LinesideError(f"{root}: no such split folder")
    unknown = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise LinesideError(f"{root}: class folders {unknown} are not in the train split's {list(classes)}")
    items = [
        PartImage(image, index)
        for index, name in enumerate(classes)
        if (root / name).is_dir()
        for image in _images_in(root / name)
    ]
    if not items:
        raise LinesideError(f"{root}: no images in its class folders")
    return PartSet(data, split, "folders", classes, tuple(items))


def read_parts(data: Path, split: str) -> PartSet:
    """The labelled parts of one split, in either layout; LinesideError naming the folder when unusable."""
    data = data.parent if data.is_file() else data
    if not data.is_dir():
        raise LinesideError(f"{data}: no such data folder")
    if detect_layout(data) == "folders":
        return _read_folders(data, split)
    found = read_split(data, split)
    items = tuple(PartImage(it.image, int(it.defective), it.label) for it in found.items)
    return PartSet(data, split, "yolo", BINARY_CLASSES, items)


def read_boxes(label: Path | None) -> npt.NDArray[np.float64]:
    """YOLO boxes (N, 5) class cx cy w h of a label file (polygons as their bounding box); none without."""
    if label is None or not label.is_file():
        return _NO_BOXES
    truth = read_truth(label, 1, 1, n_classes=1 << 16)  # 1x1 "pixels": normalised x1 y1 x2 y2
    xyxy = truth.boxes
    return np.column_stack(
        [truth.classes, (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
         xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]]
    ).astype(np.float64)  # fmt: skip


def load_frame(path: Path) -> Frame:
    """The image as the appliance's camera delivers it: BGR uint8, three channels (grey is expanded)."""
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise LinesideError(f"{path}: unreadable image")
    return np.ascontiguousarray(frame, dtype=np.uint8)


def parts_fingerprint(sets: Sequence[PartSet]) -> str:
    """sha256 over every split's image names, class names, image sha256 and label text, in order."""
    digest = hashlib.sha256()
    for parts in sets:
        for item in parts.items:
            digest.update(f"{parts.split}/{parts.classes[item.label]}/{item.image.name}\0".encode())
            digest.update(hashlib.sha256(item.image.read_bytes()).digest())
            label = item.boxes_file
            digest.update(label.read_bytes() if label is not None and label.is_file() else b"<no label>")
    return digest.hexdigest()


def _derived(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def seed_pipeline(step: A.BasicTransform | A.BaseCompose, seed: int) -> None:
    """Seed every step of an albumentations pipeline with its own seed derived from `seed`.

    albumentations' own set_random_seed gives every step the same seed, so their "apply?" draws agree
    and the steps fire all together or not at all (42% of images untouched instead of 11% by default).
    """
    step.set_random_seed(seed)  # a Compose passes it on to its children; they are re-seeded below
    for number, child in enumerate(getattr(step, "transforms", ())):
        seed_pipeline(child, _derived(seed, number))


class FrameTensor:
    """A BGR frame to the model's (1, 3, H, W) input, through edge's Preprocessor (a copy, not its buffer)."""

    def __init__(self, imgsz: int) -> None:
        self._pre = Preprocessor(input_spec(imgsz))

    def __call__(self, frame: Frame) -> torch.Tensor:
        tensor, _ = self._pre(frame)
        return torch.from_numpy(np.array(tensor, dtype=np.float32, copy=True))


def letterboxed(frame: Frame, imgsz: int) -> tuple[Frame, npt.NDArray[np.float64]]:
    """The appliance's input canvas of a frame (BGR, imgsz square, grey 114 border: edge's Preprocessor's
    own) and the matrix that maps normalised frame coordinates onto it: canvas = xy * scale + shift."""
    preprocess = Preprocessor(input_spec(imgsz))
    geometry = preprocess.letterbox(frame)
    placement = np.array(
        [[geometry.resized_width, geometry.resized_height], [geometry.pad_x, geometry.pad_y]], np.float64
    )
    return preprocess.canvas.copy(), placement


def crop_origin(
    boxes: npt.NDArray[np.float64], placement: npt.NDArray[np.float64], imgsz: int, crop: int,
    rng: np.random.Generator,
) -> tuple[int, int]:  # fmt: skip
    """Top-left corner of a crop x crop window of the canvas: one that holds a box picked at random (as
    much of it as fits), or, without boxes, one on the part itself (not on the letterbox border)."""
    scale, shift = placement
    if not len(boxes):
        # windows inside the part's content; a part narrower than the window: centred on it
        return _pick(shift[0], shift[0] + scale[0] - crop, imgsz, crop, rng), _pick(
            shift[1], shift[1] + scale[1] - crop, imgsz, crop, rng
        )
    _, cx, cy, w, h = boxes[int(rng.integers(0, len(boxes)))]
    corner: list[int] = []
    for centre, extent, axis in ((cx, w, 0), (cy, h, 1)):
        low_edge = (centre - extent / 2) * scale[axis] + shift[axis]
        high_edge = (centre + extent / 2) * scale[axis] + shift[axis]
        # every origin that keeps the whole box in view; a box larger than the crop: centred on it
        corner.append(_pick(high_edge - crop, low_edge, imgsz, crop, rng))
    return corner[0], corner[1]


def _pick(first: float, last: float, imgsz: int, crop: int, rng: np.random.Generator) -> int:
    """A window origin drawn from [first, last] (their middle when first > last), kept on the canvas."""
    room = imgsz - crop
    if first > last:
        first = last = (first + last) / 2
    lo = min(max(0, int(np.ceil(first))), room)
    hi = max(min(room, int(np.floor(last))), lo)
    return int(rng.integers(lo, hi + 1))


class PartDataset(Dataset[tuple[torch.Tensor, int]]):
    """(3, H, W) float tensors and class indices; augmented (reproducibly per seed, epoch and image) or not.

    Set `epoch` before each pass: image i of epoch e is augmented (and cropped) with seed (seed, e, i), so a
    resumed or multi-worker run draws the same augmentations as an uninterrupted one. With `crop`, each
    image is a crop x crop window of its letterboxed canvas (see the module's docstring); a defective part
    needs boxes then (YOLO layout), so that its window holds a defect.
    """

    def __init__(
        self,
        parts: PartSet,
        imgsz: int,
        pipeline: A.Compose | None = None,
        seed: int = 0,
        crop: int | None = None,
    ) -> None:
        self.parts = parts
        self.pipeline = pipeline
        self.seed = seed
        self.epoch = 0
        self.imgsz = imgsz
        self.crop = crop
        self._to_tensor = FrameTensor(crop or imgsz)

    def __len__(self) -> int:
        return len(self.parts.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.parts.items[index]
        frame = load_frame(item.image)
        if self.pipeline is None and self.crop is None:
            return self._to_tensor(frame)[0], item.label  # the part as it is (validation): no label read
        boxes = read_boxes(item.boxes_file)
        if self.pipeline is not None:
            frame, boxes = self._augmented(self.pipeline, frame, boxes, index)
        if self.crop is not None:
            frame = self._cropped(frame, boxes if item.label else _NO_BOXES, self.crop, index)
        return self._to_tensor(frame)[0], item.label

    def _augmented(
        self, pipeline: A.Compose, frame: Frame, boxes: npt.NDArray[np.float64], index: int
    ) -> tuple[Frame, npt.NDArray[np.float64]]:
        from training.augment import augment

        seed_pipeline(pipeline, _derived(self.seed, self.epoch, index))
        # albumentations' colour steps assume RGB; the frame (and the Preprocessor) are BGR.
        image, kept = augment(pipeline, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), boxes)
        if len(boxes) and not len(kept):
            return frame, boxes  # every defect moved out of view: the "defect" label would be a lie
        return np.ascontiguousarray(cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR)), kept

    def _cropped(self, frame: Frame, boxes: npt.NDArray[np.float64], crop: int, index: int) -> Frame:
        canvas, placement = letterboxed(frame, self.imgsz)
        rng = np.random.default_rng(_derived(self.seed, self.epoch, index, 1))
        x0, y0 = crop_origin(boxes, placement, self.imgsz, crop, rng)
        return np.ascontiguousarray(canvas[y0 : y0 + crop, x0 : x0 + crop])


def require_boxes(parts: PartSet) -> None:
    """Crops are taken around a defective part's defects: every defective part needs a box."""
    for item in parts.items:
        if item.label and not len(read_boxes(item.boxes_file)):
            where = item.boxes_file or item.image
            raise LinesideError(
                f"{where}: a defective part without boxes cannot be cropped around its defect"
                " (crop needs the YOLO layout, with a box for every defective part)"
            )
