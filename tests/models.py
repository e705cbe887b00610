"""Builds tiny ONNX models with a YOLOv8-shaped output and known boxes, plus a valid model card.

The output is (1, 4 + classes, anchors): fixed boxes, and class scores times a gain that is 1 or the mean
of the input tensor (so a brighter frame gives higher scores). Opset 17, IR version 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.modelstore.card import InputSpec, ModelCard, TrainingInfo, sha256_file, write_card

OPSET = 17
IR_VERSION = 8
_ONNX_TYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "uint8": TensorProto.UINT8}


class ModelBox(NamedTuple):
    """One anchor's prediction in model-input pixels: centre, size, its class and score."""

    cx: float
    cy: float
    w: float
    h: float
    class_id: int
    score: float


def yolo_output(classes: Sequence[str], boxes: Sequence[ModelBox], anchors: int = 0) -> np.ndarray:
    """The raw (1, 4 + classes, anchors) head output the model returns (with gain 1)."""
    count = max(anchors, len(boxes), 1)
    out = np.zeros((1, 4 + len(classes), count), dtype=np.float32)
    for i, box in enumerate(boxes):
        out[0, :4, i] = (box.cx, box.cy, box.w, box.h)
        out[0, 4 + box.class_id, i] = box.score
    return out


def make_yolo_model(
    model_dir: Path,
    classes: Sequence[str],
    boxes: Sequence[ModelBox],
    imgsz: tuple[int, int] = (64, 64),
    *,
    anchors: int = 0,
    gain: Literal["constant", "input_mean"] = "constant",
    onnx_imgsz: tuple[int, int] | None = None,
    card_classes: Sequence[str] | None = None,
    dtype: Literal["float32", "float16", "uint8"] = "float32",
    fail_at_runtime: bool = False,
    external_data: bool = False,
    input_fields: dict[str, Any] | None = None,
    **card_fields: Any,
) -> Path:
    """Write `model.onnx` and `card.json` into model_dir and return model_dir.

    imgsz is (width, height) of the card's input; onnx_imgsz builds the graph at another size, and
    card_classes writes other classes into the card, to test refusals. fail_at_runtime adds a Gather whose
    index is out of range only when run. external_data stores the constants in a side file.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    width, height = onnx_imgsz or imgsz
    head = yolo_output(classes, boxes, anchors)
    nodes = [
        helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["images_f"], ["mean"], keepdims=0),
    ]
    initializers = [
        numpy_helper.from_array(head[:, :4], "boxes"),
        numpy_helper.from_array(head[:, 4:], "scores"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes.append(helper.make_node("Mul", ["mean", "zero"], ["mean_zero"]))
    if gain == "constant":
        nodes.append(helper.make_node("Add", ["mean_zero", "one"], ["gain"]))
    else:
        nodes.append(helper.make_node("Identity", ["mean"], ["gain"]))
    if fail_at_runtime:
        initializers.append(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "table"))
        initializers.append(numpy_helper.from_array(np.array(1000.0, np.float32), "far"))
        nodes += [
            helper.make_node("Add", ["mean_zero", "far"], ["index_f"]),
            helper.make_node("Cast", ["index_f"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["picked"]),
            helper.make_node("Mul", ["picked", "zero"], ["picked_zero"]),
            helper.make_node("Add", ["gain", "picked_zero"], ["gain_checked"]),
        ]
    gain_name = "gain_checked" if fail_at_runtime else "gain"
    nodes.append(helper.make_node("Mul", ["scores", gain_name], ["scaled"]))
    nodes.append(helper.make_node("Concat", ["boxes", "scaled"], ["output0"], axis=1))
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("images", _ONNX_TYPES[dtype], [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(head.shape))],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx_path = model_dir / "model.onnx"
    if external_data:
        onnx.save(model, str(onnx_path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    else:
        onnx.save(model, str(onnx_path))
    card = ModelCard(
        name=card_fields.pop("name", "tiny"),
        version=card_fields.pop("version", "1"),
        sha256=sha256_file(onnx_path),
        input=InputSpec(width=imgsz[0], height=imgsz[1], dtype=dtype, **(input_fields or {})),
        classes=tuple(card_classes or classes),
        training=TrainingInfo(data_fingerprint="0" * 64, code_version="tests"),
        **card_fields,
    )
    write_card(model_dir, card)
    return model_dir
