"""INT8 models: static QDQ quantisation, per channel, calibrated through edge's own pre-processing.

The detection head's last convolutions, its concatenations, sigmoid and box decode stay in fp32: boxes
(hundreds of pixels) and scores (0..1) share one output tensor, and one INT8 scale for both destroys
the scores (a quantisation with nothing kept in fp32 agreed with fp32 on 26 of 60 demo parts).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.detector import Detector
from edge.judge.detector.preprocess import Preprocessor
from edge.judge.inspection import Verdict
from edge.judge.rules import RoiConfig, decide, rules_from_card
from edge.modelstore.card import ModelCard, load_verified, sha256_file, write_card

KeepFp32 = Literal["head-final", "head", "all-but-backbone"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def calibration_files(images: Path | Sequence[Path], limit: int) -> list[Path]:
    """Image files for calibration: a folder's images in name order, or the given files; at most `limit`."""
    if isinstance(images, Path):
        if not images.is_dir():
            raise LinesideError(f"{images}: calibration image folder does not exist")
        files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        files = list(images)
    if not files:
        raise LinesideError(f"{images}: no calibration images")
    if len(files) > limit:  # spread over the whole set, not its first files
        files = (
            [files[round(i * (len(files) - 1) / (limit - 1))] for i in range(limit)]
            if limit > 1
            else files[:1]
        )
    return files


def _read_bgr(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise LinesideError(f"{path}: not a readable image")
    return np.asarray(image, dtype=np.uint8)


class EdgeCalibrationReader(CalibrationDataReader):  # type: ignore[misc]
    """Calibration tensors made exactly as the appliance makes them (letterbox, colour order, scale)."""

    def __init__(self, card: ModelCard, input_name: str, files: Sequence[Path]) -> None:
        self._pre = Preprocessor(card.input)
        self._name = input_name
        self._files: Iterator[Path] = iter(files)

    def get_next(self) -> dict[str, npt.NDArray[np.generic]] | None:
        path = next(self._files, None)
        if path is None:
            return None
        tensor, _ = self._pre(_read_bgr(path))
        return {self._name: tensor.copy()}  # the preprocessor reuses its buffer


def _backbone_conv(node: onnx.NodeProto) -> bool:
    """A convolution of the backbone: inside one of its modules ("/blocks/...", "/features/...").

    The classifier's head is a convolution too (its linear layer over every location, for the heat map),
    applied by the export wrapper at the graph's top level ("/Conv"): it stays fp32 with the rest of the
    head. The anomaly map's smoothing is the exporter's "/map/" module.
    """
    scope = node.name.split("/")[1:-1]  # "/blocks/blocks.6/conv_pwl/Conv" -> its modules
    return node.op_type == "Conv" and bool(scope) and scope[0] != "map"


def fp32_nodes(model: onnx.ModelProto, keep: KeepFp32 = "head-final") -> list[str]:
    """Names of the nodes to leave in fp32.

    An Ultralytics head (found by its `dfl` node): with "head-final" everything in the head except the
    3x3 conv blocks of its box and class branches (cv2.i.0/1, cv3.i.0/1); with "head" all of it. Any
    other model: every node between the output and the nearest convolutions, those included;
    "all-but-backbone" (classify and anomaly models): every node outside the backbone.
    """
    names = [n.name for n in model.graph.node]
    if keep == "all-but-backbone":
        # classify/anomaly: only the pretrained backbone's convolutions go INT8 (they are its time); the
        # head, the class activation map, the memory-bank distances and the anomaly map's smoothing (the
        # exporter's `/map/` convolutions) stay fp32: their scales are the model's verdict.
        return [n.name for n in model.graph.node if not _backbone_conv(n)]
    dfl = next((n for n in names if "/dfl/" in n), None)
    if dfl is not None:
        prefix = dfl.split("dfl/")[0]
        branch = re.compile(re.escape(prefix) + r"cv[23]\.\d+/cv[23]\.\d+\.[01]/")
        return [n for n in names if n.startswith(prefix) and (keep == "head" or branch.match(n) is None)]
    producers = {out: i for i, node in enumerate(model.graph.node) for out in node.output}
    kept: list[str] = []
    todo = [o.name for o in model.graph.output]
    seen: set[int] = set()
    while todo:
        index = producers.get(todo.pop())
        if index is None or index in seen:
            continue
        seen.add(index)
        node = model.graph.node[index]
        kept.append(node.name)
        if node.op_type != "Conv":
            todo.extend(node.input)
    return kept


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes a name: the quantiser excludes nodes by name."""
    taken = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = next(
                f"{node.op_type}_{i}_{k}"
                for k in range(len(taken) + 1)
                if f"{node.op_type}_{i}_{k}" not in taken
            )
            taken.add(node.name)


def quantize_model(
    model_dir: Path,
    calib_images: Path | Sequence[Path],
    out_dir: Path,
    *,
    max_images: int = 64,
    keep_fp32: KeepFp32 = "head-final",
    version: str | None = None,
) -> ModelCard:
    """Write an INT8 (QDQ) copy of the fp32 model in `model_dir` to `out_dir`, with its own card.

    Calibration runs on at most `max_images` of `calib_images` (a folder or files) through the
    appliance's pre-processing. The card keeps classes and thresholds, says precision int8 and records
    how it was made; its fp32 metrics are not carried over (check agreement with `compare_verdicts`).
    """
    card, onnx_path = load_verified(model_dir)
    if card.precision != "fp32" or card.input.dtype != "float32":
        raise LinesideError(f"{model_dir}: quantize needs an fp32 model with float32 input")
    files = calibration_files(calib_images, max_images)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "model.onnx"
    with tempfile.TemporaryDirectory(prefix="lineside-quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        model = onnx.load(str(prepared))
        _name_nodes(model)
        onnx.save(model, str(prepared))
        input_name = model.graph.input[0].name
        excluded = fp32_nodes(model, keep_fp32)
        quantize_static(
            str(prepared),
            str(target),
            EdgeCalibrationReader(card, input_name, files),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=excluded,
        )
        # The quantiser drops the model's metadata; a classify or anomaly card is checked against it.
        source = onnx.load(str(onnx_path))
        if source.metadata_props:
            quantized = onnx.load(str(target))
            onnx.helper.set_model_props(quantized, {p.key: p.value for p in source.metadata_props})
            onnx.save(quantized, str(target))
    how = {"method": "static QDQ, per channel, MinMax", "calibration_images": len(files)}
    how |= {"fp32_nodes": len(excluded), "keep_fp32": keep_fp32, "from": f"{card.name} {card.version}"}
    int8 = card.model_copy(
        update={
            "version": version or f"{card.version}-int8",
            "file": "model.onnx",
            "sha256": sha256_file(target),
            "precision": "int8",
            "metrics": {},
            "training": card.training.model_copy(update={"args": {**card.training.args, "int8": how}}),
        }
    )
    write_card(out_dir, int8)
    return int8


@dataclass(frozen=True)
class Agreement:
    """How often two models give the same verdict (card rules, whole frame) on the same images."""

    same: int
    total: int
    differing: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.same}/{self.total} same verdict"


def _verdicts(model_dir: Path, images: Sequence[npt.NDArray[np.uint8]]) -> list[Verdict]:
    detector = Detector(model_dir, DetectorConfig(warmup_runs=0))
    card = detector.card
    rules = rules_from_card(card)
    verdicts = []
    for image in images:
        detections = detector.detect(image).detections
        verdicts.append(decide(detections, image.shape, rules, RoiConfig(), card.classes, None).verdict)
    return verdicts


def compare_verdicts(reference_dir: Path, candidate_dir: Path, files: Sequence[Path]) -> Agreement:
    """Verdicts of the candidate (e.g. INT8) against the reference (fp32) model on `files`."""
    images = [_read_bgr(f) for f in files]
    ref, cand = _verdicts(reference_dir, images), _verdicts(candidate_dir, images)
    differing = tuple(str(f) for f, a, b in zip(files, ref, cand, strict=True) if a is not b)
    return Agreement(len(files) - len(differing), len(files), differing)
