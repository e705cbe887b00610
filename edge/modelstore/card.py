"""The model card: everything the runtime needs to run a model, and the proof that it is the right file.

A model artifact is a folder holding `model.onnx` and `card.json`. The detector reads input size,
normalisation, output layout, class names and default thresholds from the card, and refuses a model
whose file does not match the card's sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.errors import LinesideError
from edge.jsonmodel import read_json_model

CARD_FILE = "card.json"
CARD_SCHEMA = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """How a frame becomes the model's input tensor."""

    width: int = Field(gt=0, le=4096, description="Model input width in pixels.")
    height: int = Field(gt=0, le=4096, description="Model input height in pixels.")
    color: Literal["RGB", "BGR"] = Field("RGB", description="Channel order the model expects.")
    scale: float = Field(1.0 / 255.0, gt=0, description="Multiplier applied to 0..255 pixel values.")
    pad_value: int = Field(114, ge=0, le=255, description="Letterbox border grey level.")
    dtype: Literal["float32", "float16", "uint8"] = Field("float32", description="Input tensor type.")


Task = Literal["detect", "classify", "anomaly"]
# Each kind's output layout (docs/models.md, "Model kinds"):
#   yolov8     detect:   one tensor (1, 4 + classes, anchors), boxes cx,cy,w,h in input pixels.
#   class_map  classify: "scores" (1, classes) probabilities, classes[0] == "good"; "heatmap" (1, H, W) the
#                        class activation map of the defect classes over the (letterboxed) input, >= 0.
#   anomaly_map anomaly: "score" (1,) the image's anomaly score; "heatmap" (1, H, W) the patch distance to
#                        the nearest good patch over the (letterboxed) input, in the score's units.
LAYOUT_OF_TASK = {"detect": "yolov8", "classify": "class_map", "anomaly": "anomaly_map"}


class OutputSpec(_Strict):
    """How the raw output tensors are decoded."""

    layout: Literal["yolov8", "class_map", "anomaly_map"] = Field(
        "yolov8",
        description="yolov8: detection head (1, 4 + classes, anchors), boxes cx,cy,w,h; class_map: class "
        "probabilities + class activation map; anomaly_map: anomaly score + anomaly map.",
    )


class Thresholds(_Strict):
    """Defaults the training run chose; a recipe may override them."""

    confidence: float = Field(0.25, ge=0.0, le=1.0, description="Floor below which detections are dropped.")
    iou: float = Field(0.45, gt=0.0, le=1.0, description="Non-maximum suppression IoU.")
    per_class: dict[str, float] = Field(
        default_factory=dict, description="Reject threshold per class name (confidence)."
    )
    score: float | None = Field(
        None,
        ge=0.0,
        description="classify/anomaly: the part is rejected at a score >= this (defect "
        "probability for classify, anomaly score for anomaly).",
    )
    pixel: float | None = Field(
        None, ge=0.0, description="anomaly: a heat-map pixel at or above this counts towards the defect area."
    )
    min_area_px: float = Field(
        0.0, ge=0.0, description="anomaly: the area above `pixel` (frame px) a reject needs; 0 = any."
    )


class BackboneInfo(_Strict):
    """The pretrained network a classify or anomaly model stands on, and the proof of its weights."""

    name: str = Field(description="Architecture, e.g. tf_efficientnet_lite0.")
    implementation: str = Field(description="The library that built it, with its version (e.g. timm 1.0.31).")
    weights_package: str = Field(description="The registry package that shipped the weights, with version.")
    weights_file: str = Field(description="The weights file inside that package.")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the weights file.")
    licence: str = Field(description="The weights' licence (SPDX id).")


class AnomalyInfo(_Strict):
    """What the anomaly model's memory bank of good patches holds, and how its threshold was chosen."""

    bank_size: int = Field(gt=0, description="Rows (good patch features) in the memory bank.")
    feature_dim: int = Field(gt=0, description="Length of one patch feature.")
    chunk_rows: int = Field(gt=0, description="Bank rows per distance block: bounds the search's memory.")
    coreset_ratio: float = Field(gt=0.0, le=1.0, description="Fraction of the good patches kept.")
    layers: tuple[int, ...] = Field(min_length=1, description="Backbone stages whose features are used.")
    patch_stride: Literal[8, 16] = Field(
        8, description="Input pixels between two patches of the bank and the search (16: 2 x 2 averaged)."
    )
    pca_from: int | None = Field(
        None,
        gt=0,
        description="PCA: the patch features' length before their projection onto feature_dim principal "
        "directions of the good patches (baked into the graph); None: not projected.",
    )
    threshold_source: Literal["validation", "good_quantile"] = Field(
        description="validation: chosen on a split with defects for a target escape rate; good_quantile: "
        "a quantile of good parts' scores times a margin (no defects seen)."
    )
    quantile: float | None = Field(None, gt=0.0, le=1.0, description="good_quantile: the quantile.")
    margin: float | None = Field(None, ge=1.0, description="good_quantile: the factor above that quantile.")


class TrainingInfo(_Strict):
    """Where the model came from, so a result can be traced back to its data and code."""

    data_fingerprint: str = Field(description="sha256 over the training data's file hashes and labels.")
    code_version: str = Field(description="lineside version (and git commit) that trained and exported it.")
    args: dict[str, object] = Field(default_factory=dict, description="Training arguments.")
    dataset: str = Field("", description="Human description of the training data and its licence.")


class ModelCard(_Strict):
    """The card beside every shipped `model.onnx`."""

    schema_version: int = Field(CARD_SCHEMA, alias="schema")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    task: Task = "detect"
    file: str = Field("model.onnx", description="ONNX file name inside the model folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: InputSpec
    output: OutputSpec = OutputSpec()
    classes: tuple[str, ...] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    training: TrainingInfo
    metrics: dict[str, object] = Field(default_factory=dict, description="Metrics on the evaluation split.")
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    backbone: BackboneInfo | None = Field(None, description="classify/anomaly: the pretrained backbone.")
    anomaly: AnomalyInfo | None = Field(None, description="anomaly: the memory bank and threshold origin.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("class names must be unique")
        unknown = set(self.thresholds.per_class) - set(self.classes)
        if unknown:
            raise ValueError(f"thresholds.per_class names unknown classes {sorted(unknown)}")
        if "/" in self.file or "\\" in self.file or self.file.startswith("."):
            raise ValueError("file must be a plain file name inside the model folder")
        if self.output.layout != LAYOUT_OF_TASK[self.task]:
            raise ValueError(f"task {self.task} needs output.layout {LAYOUT_OF_TASK[self.task]}")
        if self.task != "detect" and self.backbone is None:
            raise ValueError(f"task {self.task} needs a backbone section")
        if self.task == "classify" and (len(self.classes) < 2 or self.classes[0] != "good"):
            raise ValueError("task classify needs classes ['good', <defect class>, ...]")
        if (self.task == "anomaly") != (self.anomaly is not None):
            raise ValueError("an anomaly section belongs to task anomaly, and task anomaly needs one")
        if self.task != "detect" and self.thresholds.score is None:
            raise ValueError(f"task {self.task} needs thresholds.score")
        if self.task == "anomaly" and self.thresholds.pixel is None:
            raise ValueError("task anomaly needs thresholds.pixel")
        return self


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(model_dir: Path) -> ModelCard:
    """Read and validate `card.json` in `model_dir`; raise LinesideError with one line on any problem."""
    return read_json_model(model_dir / CARD_FILE, ModelCard, "model card")


def load_verified(model_dir: Path) -> tuple[ModelCard, Path]:
    """Return the card and the ONNX path, refusing a model whose sha256 does not match its card."""
    card = read_card(model_dir)
    onnx_path = model_dir / card.file
    if not onnx_path.is_file():
        raise LinesideError(f"{onnx_path}: model file named by the card is missing")
    actual = sha256_file(onnx_path)
    if actual != card.sha256:
        raise LinesideError(
            f"{onnx_path}: sha256 {actual[:12]}... does not match card {card.sha256[:12]}...: model refused"
        )
    return card, onnx_path


def write_card(model_dir: Path, card: ModelCard) -> Path:
    """Write the card atomically (temp file, fsync, rename)."""
    from edge.atomic import atomic_write_text

    data = card.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not data["thresholds"].get("min_area_px"):
        del data["thresholds"]["min_area_px"]  # detect cards stay as older appliances read them
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return atomic_write_text(model_dir / CARD_FILE, text)
