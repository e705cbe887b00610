"""Parity: does the exported model, run through edge as the line runs it, give what the reference gives?

The reference is the PyTorch checkpoint (Ultralytics `YOLO(best.pt).predict`, same imgsz, floor and NMS
IoU) or another exported model (fp32 against INT8). Boxes are paired per image by IoU within a class;
paired boxes must agree in score and place, and no box clearly above the floor may go unpaired.
`mismatch` deliberately breaks the candidate's pre-processing, so a test can prove the check bites.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import LinesideError
from edge.judge.detector.decode import decode_yolov8
from edge.judge.detector.detector import Detector
from edge.judge.detector.preprocess import Preprocessor
from edge.modelstore.card import ModelCard, read_card, sha256_file
from edge.sources.config import SourceConfig
from edge.sources.imagecheck import read_image_file
from training.metrics import ImageBoxes, box_iou

Mismatch = Literal["none", "swap_rb", "no_normalise", "stretch"]
PAIR_IOU = 0.3  # boxes overlapping less than this are not the same defect at all


@dataclass(frozen=True)
class ParityTolerance:
    """How close the two must be; boxes scoring below conf_floor + score on both sides may go unpaired."""

    score: float = 0.02
    iou: float = 0.9
    conf_floor: float = 0.05


FP32_TOLERANCE = ParityTolerance()  # ONNX fp32 vs PyTorch fp32: only float rounding differs
# INT8 moves scores by a few hundredths and boxes by a pixel or two at 320 px: looser, still meaningful.
INT8_TOLERANCE = ParityTolerance(score=0.08, iou=0.8, conf_floor=0.1)


@dataclass(frozen=True)
class ImageParity:
    """One image compared: boxes paired, boxes left unpaired above the floor, and the worst pair."""

    image: str
    candidate_boxes: int
    reference_boxes: int
    paired: int
    unpaired: int
    max_score_diff: float
    min_iou: float

    def ok(self, tolerance: ParityTolerance) -> bool:
        return self.unpaired == 0 and self.max_score_diff <= tolerance.score and self.min_iou >= tolerance.iou


@dataclass(frozen=True)
class ParityReport:
    """The verdict over all images, the tolerance it was judged by, and the worst image."""

    candidate: str
    reference: str
    mismatch: str
    tolerance: ParityTolerance
    images: tuple[ImageParity, ...]
    # The model files compared, so that the promotion gate can tell this verdict is about its model file
    # and not about one exported earlier into the same folder.
    candidate_sha256: str = ""
    reference_sha256: str = ""

    @property
    def failed(self) -> tuple[ImageParity, ...]:
        return tuple(i for i in self.images if not i.ok(self.tolerance))

    @property
    def passed(self) -> bool:
        return bool(self.images) and not self.failed

    @property
    def worst(self) -> ImageParity | None:
        score_room = max(self.tolerance.score, 1e-9)
        iou_room = max(1.0 - self.tolerance.iou, 1e-9)
        return max(
            self.images,
            key=lambda i: (i.unpaired, max(i.max_score_diff / score_room, (1 - i.min_iou) / iou_room)),
            default=None,
        )

    def summary(self) -> str:
        worst = self.worst
        head = f"parity {'PASSED' if self.passed else 'FAILED'}: {len(self.images) - len(self.failed)}"
        head += f"/{len(self.images)} images within tolerance {asdict(self.tolerance)}"
        if worst is None:
            return head + " (no images)"
        return (
            f"{head}; worst {worst.image}: {worst.unpaired} unpaired, max score diff"
            f" {worst.max_score_diff:.4f}, min IoU {worst.min_iou:.3f}"
        )

    def to_json(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "passed": self.passed,
            "candidate": self.candidate,
            "candidate_sha256": self.candidate_sha256,
            "reference": self.reference,
            "reference_sha256": self.reference_sha256,
            "mismatch": self.mismatch,
            "tolerance": asdict(self.tolerance),
            "images": len(self.images),
            "failed": [i.image for i in self.failed],
            "worst": asdict(worst) if worst else None,
            "max_score_diff": max((i.max_score_diff for i in self.images), default=0.0),
            "min_iou": min((i.min_iou for i in self.images), default=1.0),
        }


def compare_image(
    name: str, candidate: ImageBoxes, reference: ImageBoxes, tol: ParityTolerance
) -> ImageParity:
    """Pair boxes of the same class greedily by IoU, then measure the pairs and what is left."""
    iou = box_iou(candidate.boxes, reference.boxes)
    iou[candidate.classes[:, None] != reference.classes[None, :]] = -1.0
    free_c = np.ones(len(candidate), dtype=bool)
    free_r = np.ones(len(reference), dtype=bool)
    diffs, ious = [0.0], [1.0]
    for flat in np.argsort(-iou, axis=None, kind="mergesort"):
        ci, ri = np.unravel_index(flat, iou.shape)
        if iou[ci, ri] < PAIR_IOU:
            break
        if free_c[ci] and free_r[ri]:
            free_c[ci] = free_r[ri] = False
            diffs.append(abs(float(candidate.scores[ci] - reference.scores[ri])))
            ious.append(float(iou[ci, ri]))
    # A box near the floor may have its twin just under the floor on the other side: that is not a miss.
    clear = tol.conf_floor + tol.score
    unpaired = int((candidate.scores[free_c] >= clear).sum() + (reference.scores[free_r] >= clear).sum())
    return ImageParity(name, len(candidate), len(reference), len(diffs) - 1, unpaired, max(diffs), min(ious))


def _mismatched(
    detector: Detector, image: npt.NDArray[np.uint8], floor: float, mismatch: Mismatch
) -> ImageBoxes:
    """The candidate's detections with the pre-processing broken on purpose (never used on a line)."""
    card = detector.card
    if mismatch == "swap_rb":
        return _boxes(detector.detect(np.ascontiguousarray(image[:, :, ::-1]), conf_floor=floor).detections)
    if mismatch == "stretch":  # resize to the input size, ignoring the aspect ratio (no letterbox)
        h, w = image.shape[:2]
        size = (card.input.width, card.input.height)
        squeezed = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
        found = _boxes(detector.detect(squeezed, conf_floor=floor).detections)
        scale = np.array([w / card.input.width, h / card.input.height] * 2)
        return ImageBoxes(found.classes, found.boxes * scale, found.scores)
    tensor, transform = Preprocessor(card.input)(image)
    if mismatch == "no_normalise":  # 0..255 pixels where the model expects 0..1
        tensor = (tensor.astype(np.float32) / np.float32(card.input.scale)).astype(tensor.dtype)
    output = detector.run_raw(tensor)
    label = f"{card.name} {card.version}"
    dets = decode_yolov8(
        output, transform=transform, class_names=card.classes, conf_floor=floor, iou=card.thresholds.iou,
        max_detections=300, model=label,
    )  # fmt: skip
    return _boxes(dets)


def _boxes(detections: Sequence[Any]) -> ImageBoxes:
    return ImageBoxes.of(
        [d.class_id for d in detections], [d.box for d in detections], [d.confidence for d in detections]
    )


def onnx_detections(
    model_dir: Path, images: Sequence[npt.NDArray[np.uint8]], floor: float, mismatch: Mismatch = "none"
) -> tuple[list[ImageBoxes], ModelCard]:
    """Detections of an exported model through edge's Detector, exactly as the line runs it, and the card
    the detector checked the model file against as it loaded it (so its sha256 is the file's)."""
    detector = Detector(model_dir)
    if mismatch == "none":
        boxes = [_boxes(detector.detect(image, conf_floor=floor).detections) for image in images]
    else:
        boxes = [_mismatched(detector, image, floor, mismatch) for image in images]
    return boxes, detector.card


def torch_detections(
    weights: Path,
    images: Sequence[npt.NDArray[np.uint8]],
    imgsz: tuple[int, int],
    *,
    classes: Sequence[str],
    floor: float,
    iou: float,
    work: Path,
) -> list[ImageBoxes]:
    """Detections of the PyTorch checkpoint by Ultralytics predict (BGR arrays in, full letterbox)."""
    yolo: Any
    if "ultralytics" in sys.modules:  # configured by whoever imported it (a training run, a test)
        yolo = importlib.import_module("ultralytics").YOLO
    else:
        from training.train import offline_ultralytics

        yolo = offline_ultralytics(work)
    model = yolo(str(weights))
    names = tuple(str(model.names[i]) for i in sorted(model.names))
    if names != tuple(classes):
        raise LinesideError(f"{weights}: classes {list(names)} differ from the model card's {list(classes)}")
    found = []
    for image in images:
        result = model.predict(
            source=image, imgsz=list(imgsz), conf=floor, iou=iou, max_det=300, device="cpu",
            rect=False, agnostic_nms=False, verbose=False,
        )[0]  # fmt: skip
        boxes = result.boxes
        found.append(
            ImageBoxes.of(
                boxes.cls.cpu().numpy().astype(int).tolist(),
                boxes.xyxy.cpu().numpy().tolist(),
                boxes.conf.cpu().numpy().tolist(),
            )
        )
    return found


def read_images(paths: Sequence[Path]) -> list[npt.NDArray[np.uint8]]:
    """The images as the line reads them (BGR, size-checked)."""
    return [read_image_file(p, SourceConfig(kind="folder", path=p.parent)) for p in paths]


def check_parity(
    onnx_dir: Path,
    reference: Path,
    images: Sequence[Path],
    tolerance: ParityTolerance | None = None,
    *,
    mismatch: Mismatch = "none",
    work: Path | None = None,
) -> ParityReport:
    """Compare the exported model in `onnx_dir` (through edge) with `reference`: a `.pt` checkpoint
    (Ultralytics, fp32 tolerance by default) or another model folder (INT8 tolerance by default)."""
    reference = Path(reference)
    is_torch = reference.suffix == ".pt"
    tol = tolerance or (FP32_TOLERANCE if is_torch else INT8_TOLERANCE)
    frames = read_images(images)
    candidate, card = onnx_detections(onnx_dir, frames, tol.conf_floor, mismatch)
    if is_torch:
        reference_sha256 = sha256_file(reference)
        imgsz = (card.input.height, card.input.width)
        with tempfile.TemporaryDirectory(prefix="lineside-parity-") as scratch:
            refs = torch_detections(
                reference,
                frames,
                imgsz,
                floor=tol.conf_floor,
                classes=card.classes,
                iou=card.thresholds.iou,
                work=work or Path(scratch),
            )
    else:
        if read_card(reference).classes != card.classes:
            raise LinesideError(f"{reference}: classes differ from {onnx_dir}'s; nothing to compare")
        refs, reference_card = onnx_detections(reference, frames, tol.conf_floor)
        reference_sha256 = reference_card.sha256
    compared = tuple(
        compare_image(p.name, c, r, tol) for p, c, r in zip(images, candidate, refs, strict=True)
    )
    return ParityReport(str(onnx_dir), str(reference), mismatch, tol, compared, card.sha256, reference_sha256)
