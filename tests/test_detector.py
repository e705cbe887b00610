"""The detector against real onnxruntime sessions on tiny generated models with known outputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from pydantic import ValidationError

from edge.errors import ErrorCode, LinesideError
from edge.judge.detector import onnxfile
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.decode import decode_yolov8
from edge.judge.detector.detector import Detector
from edge.judge.detector.errors import InferenceError, InvalidFrame
from edge.judge.detector.preprocess import Preprocessor, letterbox_transform
from edge.judge.inspection import Detection
from edge.modelstore.card import InputSpec
from tests.models import ModelBox, make_yolo_model, yolo_output

CLASSES = ("scratch", "dent")


def boxes_of(result_detections: tuple[Detection, ...]) -> list[tuple[str, float, tuple[float, ...]]]:
    return [
        (d.class_name, round(d.confidence, 3), tuple(round(v, 3) for v in d.box)) for d in result_detections
    ]


@pytest.mark.parametrize(
    ("frame_wh", "input_wh", "ratio", "resized_wh", "pad_xy"),
    [
        ((640, 480), (640, 640), 1.0, (640, 480), (0, 80)),
        ((1280, 720), (640, 640), 0.5, (640, 360), (0, 140)),
        ((480, 640), (640, 640), 1.0, (480, 640), (80, 0)),
        # 51 * 0.64 = 32.64 -> 33 rows; 31 spare rows split 15 above, 16 below.
        ((100, 51), (64, 64), 0.64, (64, 33), (0, 15)),
        # Small frames are scaled up: 20 * 64/30 = 42.67 -> 43 rows; 21 spare split 10 / 11.
        ((30, 20), (64, 64), 64 / 30, (64, 43), (0, 10)),
        ((640, 640), (640, 384), 0.6, (384, 384), (128, 0)),
    ],
)
def test_letterbox_geometry_matches_the_ultralytics_rounding(frame_wh, input_wh, ratio, resized_wh, pad_xy):
    t = letterbox_transform(*frame_wh, *input_wh)
    assert t.ratio == pytest.approx(ratio)
    assert (t.resized_width, t.resized_height) == resized_wh
    assert (t.pad_x, t.pad_y) == pad_xy


def test_preprocess_letterboxes_swaps_to_rgb_and_scales():
    spec = InputSpec(width=64, height=64)
    frame = np.zeros((64, 128, 3), dtype=np.uint8)  # wide: scaled by 0.5 into rows 16..47
    frame[:, :] = (10, 20, 30)  # BGR
    tensor, transform = Preprocessor(spec)(frame)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert (transform.pad_x, transform.pad_y) == (0, 16)
    assert tensor[0, 0, 16:48].min() == pytest.approx(30 / 255)  # red first: RGB
    assert tensor[0, 2, 16:48].max() == pytest.approx(10 / 255)
    assert np.allclose(tensor[0, :, :16], 114 / 255) and np.allclose(tensor[0, :, 48:], 114 / 255)


def test_preprocess_refills_the_border_when_the_frame_shape_changes():
    pre = Preprocessor(InputSpec(width=64, height=64, color="BGR"))
    pre(np.full((64, 64, 3), 255, dtype=np.uint8))  # fills the whole canvas
    tensor, _ = pre(np.full((32, 64, 3), 255, dtype=np.uint8))
    assert np.allclose(tensor[0, :, :16], 114 / 255)
    assert np.allclose(tensor[0, :, 16:48], 1.0)


def test_preprocess_writes_each_frame_into_the_canvas_for_tall_wide_and_exact_frames():
    pre, rng = Preprocessor(InputSpec(width=64, height=64, color="BGR")), np.random.default_rng(0)
    for shape in ((128, 64, 3), (64, 128, 3), (64, 64, 3), (128, 64, 3)):
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        tensor, t = pre(frame)
        expected = cv2.resize(frame, (t.resized_width, t.resized_height), interpolation=cv2.INTER_LINEAR)
        content = tensor[0, :, t.pad_y : t.pad_y + t.resized_height, t.pad_x : t.pad_x + t.resized_width]
        assert np.allclose(content.transpose(1, 2, 0) * 255, expected, atol=1e-3), shape


def test_preprocess_copies_a_resize_that_opencv_did_not_write_in_place(monkeypatch):
    # OpenCV may hand back a new array instead of writing into the canvas: never judge the last frame's pixels
    pre = Preprocessor(InputSpec(width=64, height=64, color="BGR"))
    pre(np.zeros((128, 128, 3), dtype=np.uint8))
    real_resize = cv2.resize

    def new_array(src, size, dst=None, interpolation=None):  # ignores dst, as OpenCV may
        return real_resize(src, size, interpolation=interpolation)

    monkeypatch.setattr(cv2, "resize", new_array)
    tensor, _ = pre(np.full((128, 128, 3), 255, dtype=np.uint8))
    assert np.allclose(tensor, 1.0)


@pytest.mark.parametrize(
    ("frame_hw", "expected_box"),
    [
        # 64x64 input, box centre (32, 32) size 16x8 -> input xyxy (24, 28, 40, 36).
        ((64, 128), (48.0, 24.0, 80.0, 40.0)),  # ratio 0.5, pad_y 16: (24-0, 28-16, ...) / 0.5
        ((128, 64), (16.0, 56.0, 48.0, 72.0)),  # ratio 0.5, pad_x 16
        ((480, 640), (240.0, 200.0, 400.0, 280.0)),  # ratio 0.1, pad_y 8: (24, 20, 40, 28) / 0.1
        ((64, 64), (24.0, 28.0, 40.0, 36.0)),
    ],
)
def test_detections_come_back_in_original_frame_pixels(tmp_path, frame_hw, expected_box):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 16, 8, 1, 0.9)])
    detector = Detector(model)
    result = detector.detect(np.zeros((*frame_hw, 3), dtype=np.uint8))
    assert len(result.detections) == 1
    det = result.detections[0]
    assert (det.class_id, det.class_name) == (1, "dent")
    assert det.box == pytest.approx(expected_box)


def test_boxes_reaching_past_the_frame_are_clipped_to_it(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(4, 20, 20, 8, 0, 0.9)])
    det = Detector(model).detect(np.zeros((64, 128, 3), dtype=np.uint8)).detections[0]
    # input (-6, 16, 14, 24), pad_y 16, ratio 0.5 -> (-12, 0, 28, 16) -> x1 clipped to 0
    assert det.box == pytest.approx((0.0, 0.0, 28.0, 16.0))


def test_confidence_floor_is_inclusive_and_defaults_to_the_card(tmp_path):
    boxes = [ModelBox(10, 10, 4, 4, 0, 0.9), ModelBox(30, 30, 4, 4, 0, 0.5), ModelBox(50, 50, 4, 4, 1, 0.2)]
    detector = Detector(make_yolo_model(tmp_path / "m", CLASSES, boxes))
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    assert detector.card.thresholds.confidence == 0.25
    assert [d.confidence for d in detector.detect(frame).detections] == pytest.approx([0.9, 0.5])
    assert len(detector.detect(frame, conf_floor=0.5).detections) == 2
    assert len(detector.detect(frame, conf_floor=0.0).detections) == 3
    assert detector.detect(frame, conf_floor=0.95).detections == ()
    with pytest.raises(ValueError, match="conf_floor"):
        detector.detect(frame, conf_floor=1.5)


def test_nms_removes_overlapping_boxes_of_one_class_but_keeps_other_classes(tmp_path):
    boxes = [
        ModelBox(20, 20, 10, 10, 0, 0.8),
        ModelBox(21, 20, 10, 10, 0, 0.9),  # same class, IoU 0.82: the 0.8 one goes
        ModelBox(20, 20, 10, 10, 1, 0.7),  # same place, other class: kept
        ModelBox(50, 50, 10, 10, 0, 0.6),  # same class, no overlap: kept
    ]
    detector = Detector(make_yolo_model(tmp_path / "m", CLASSES, boxes, anchors=100))
    result = detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
    assert boxes_of(result.detections) == [
        ("scratch", 0.9, (16.0, 15.0, 26.0, 25.0)),
        ("dent", 0.7, (15.0, 15.0, 25.0, 25.0)),
        ("scratch", 0.6, (45.0, 45.0, 55.0, 55.0)),
    ]


def area(boxes: np.ndarray) -> np.ndarray:
    return np.asarray((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))


def reference_nms(xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> set[int]:
    """Greedy NMS per class, the way torchvision's nms (used by Ultralytics) defines it."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        rivals = [k for k in kept if classes[k] == classes[i]]
        if not rivals:
            kept.append(int(i))
            continue
        other = xyxy[rivals]
        inter_w = np.clip(np.minimum(other[:, 2], xyxy[i, 2]) - np.maximum(other[:, 0], xyxy[i, 0]), 0, None)
        inter_h = np.clip(np.minimum(other[:, 3], xyxy[i, 3]) - np.maximum(other[:, 1], xyxy[i, 1]), 0, None)
        inter = inter_w * inter_h
        union = area(other) + area(xyxy[i]) - inter
        if (inter / union <= iou).all():
            kept.append(int(i))
    return set(kept)


def test_nms_matches_a_reference_greedy_nms_on_random_boxes():
    rng = np.random.default_rng(7)
    count = 300
    centres, sizes = rng.uniform(40, 600, (count, 2)), rng.uniform(8, 120, (count, 2))
    scores = rng.uniform(0.3, 1.0, count).astype(np.float32)
    classes = rng.integers(0, 2, count)
    boxes = [
        ModelBox(float(c[0]), float(c[1]), float(z[0]), float(z[1]), int(k), float(p))
        for c, z, k, p in zip(centres, sizes, classes, scores, strict=True)
    ]
    output = yolo_output(CLASSES, boxes)
    transform = letterbox_transform(640, 640, 640, 640)
    found = decode_yolov8(
        output,
        transform=transform,
        class_names=CLASSES,
        conf_floor=0.0,
        iou=0.45,
        max_detections=count,
        model="random",
    )
    cxcywh = output[0, :4].T.astype(np.float64)  # the float32 values the model really returns
    xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
    expected = reference_nms(xyxy, scores, classes, 0.45)
    assert 20 < len(expected) < count  # the case really suppresses something
    found_boxes = sorted(tuple(round(v, 2) for v in d.box) for d in found)
    expected_boxes = sorted(tuple(round(float(v), 2) for v in np.clip(xyxy[i], 0, 640)) for i in expected)
    assert found_boxes == expected_boxes


def test_max_detections_keeps_the_most_confident(tmp_path):
    boxes = [ModelBox(8 + 12 * i, 30, 4, 4, 0, 0.3 + 0.1 * i) for i in range(5)]
    cfg = DetectorConfig(max_detections=2)
    detector = Detector(make_yolo_model(tmp_path / "m", CLASSES, boxes), cfg)
    result = detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
    assert [d.confidence for d in result.detections] == pytest.approx([0.7, 0.6])


def test_detections_follow_the_frame_content(tmp_path):
    # Scores are multiplied by the mean input value: a black frame gives nothing, a white one the box.
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)], gain="input_mean")
    detector = Detector(model)
    assert detector.detect(np.zeros((64, 64, 3), dtype=np.uint8)).detections == ()
    bright = detector.detect(np.full((64, 64, 3), 255, dtype=np.uint8)).detections
    assert [d.confidence for d in bright] == pytest.approx([0.9])


def test_timings_are_reported_per_step(tmp_path):
    detector = Detector(make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)]))
    assert detector.model_dir == tmp_path / "m"
    timings = detector.detect(np.zeros((48, 64, 3), dtype=np.uint8)).timings_ms
    assert set(timings) == {"preprocess", "infer", "decode"}
    assert all(v >= 0.0 for v in timings.values())


def test_warmup_runs_and_settings_do_not_change_results(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)])
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    plain = Detector(model)
    tuned = Detector(model, DetectorConfig(threads=1, graph_optimization="disable", warmup_runs=3))
    tuned.warmup()
    assert boxes_of(tuned.detect(frame).detections) == boxes_of(plain.detect(frame).detections)


def test_uint8_model_gets_unscaled_pixels(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)], dtype="uint8")
    detector = Detector(model)
    tensor, _ = Preprocessor(detector.card.input)(np.full((64, 64, 3), 200, dtype=np.uint8))
    assert tensor.dtype == np.uint8 and int(tensor.max()) == 200
    assert len(detector.detect(np.zeros((64, 64, 3), dtype=np.uint8)).detections) == 1


def test_sha256_mismatch_is_refused_with_one_line(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)])
    with (model / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(LinesideError, match="does not match card") as err:
        Detector(model)
    assert "\n" not in str(err.value)


def test_card_class_count_different_from_output_channels_is_refused(tmp_path):
    model = make_yolo_model(
        tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)], card_classes=("a", "b", "c")
    )
    with pytest.raises(LinesideError, match=r"tiny 1: output shape \[1, 6, 1\].*7.*3 classes"):
        Detector(model)


def test_decode_checks_every_output_against_the_card_classes():
    # onnxruntime infers static output shapes at load time; this guards outputs it could not infer.
    transform = letterbox_transform(64, 64, 64, 64)
    output = yolo_output(CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)])
    kwargs: dict[str, Any] = {
        "transform": transform,
        "conf_floor": 0.25,
        "iou": 0.45,
        "max_detections": 10,
        "model": "tiny 1",
    }
    assert len(decode_yolov8(output, class_names=CLASSES, **kwargs)) == 1
    with pytest.raises(InferenceError, match=r"model tiny 1: output shape \[1, 6, 1\].*\(1, 5, anchors\)"):
        decode_yolov8(output, class_names=("a",), **kwargs)
    with pytest.raises(InferenceError, match="output shape"):
        decode_yolov8(output[0], class_names=CLASSES, **kwargs)


def test_card_input_size_different_from_the_onnx_input_is_refused(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(16, 16, 8, 8, 0, 0.9)], onnx_imgsz=(32, 48))
    with pytest.raises(LinesideError, match=r"input shape \[1, 3, 48, 32\] does not match card input"):
        Detector(model)


def test_card_input_type_different_from_the_onnx_input_is_refused(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)])
    card_text = (model / "card.json").read_text().replace('"float32"', '"float16"')
    (model / "card.json").write_text(card_text)
    with pytest.raises(LinesideError, match="input type tensor"):
        Detector(model)


def test_model_with_external_data_is_refused(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)], external_data=True)
    assert (model / "weights.bin").is_file()
    with pytest.raises(LinesideError, match="external data"):
        Detector(model)


def test_external_data_is_found_inside_subgraphs_and_constants():
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "c")
    onnx.external_data_helper.set_external_data(tensor, location="side.bin")
    tensor.ClearField("raw_data")
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["y"], value=tensor)],
        "branch",
        [],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])],
    )
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph)
    assert onnxfile.references_external_data(model.SerializeToString())
    constant = model.graph.node[0].attribute[0].g.node[0].attribute[0].t
    constant.CopyFrom(numpy_helper.from_array(np.ones(4, np.float32), "c"))
    model.graph.node[0].attribute[1].g.node[0].attribute[0].t.CopyFrom(constant)
    assert not onnxfile.references_external_data(model.SerializeToString())


def test_external_data_scanner_uses_the_onnx_field_numbers():
    def number(message: Any, field: str) -> int:
        return int(message.DESCRIPTOR.fields_by_name[field].number)

    assert number(onnx.ModelProto, "graph") == 7 and number(onnx.ModelProto, "functions") == 25
    assert number(onnx.ModelProto, "training_info") == 20
    assert number(onnx.GraphProto, "initializer") == 5 and number(onnx.GraphProto, "sparse_initializer") == 15
    assert number(onnx.AttributeProto, "t") == 5 and number(onnx.AttributeProto, "graphs") == 11
    assert number(onnx.AttributeProto, "sparse_tensors") == 23
    assert number(onnx.FunctionProto, "node") == 7 and number(onnx.FunctionProto, "attribute_proto") == 11
    assert number(onnx.TensorProto, "external_data") == 13 and number(onnx.TensorProto, "data_location") == 14


def test_a_truncated_model_file_is_refused_not_crashed(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)])
    data = (model / "model.onnx").read_bytes()
    with pytest.raises(onnxfile.MalformedOnnxError):
        onnxfile.references_external_data(data[: len(data) - 7])


def test_inference_failure_propagates_instead_of_returning_no_detections(tmp_path):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)], fail_at_runtime=True)
    detector = Detector(model)
    with pytest.raises(InferenceError, match="model tiny 1: inference failed") as err:
        detector.detect(np.zeros((64, 64, 3), dtype=np.uint8))
    assert err.value.error_code is ErrorCode.MODEL
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("score", "message"), [(float("nan"), "non-finite"), (3.0, "not a sigmoid")])
def test_a_broken_head_output_is_an_inference_error(tmp_path, score, message):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, score)])
    with pytest.raises(InferenceError, match=message):
        Detector(model).detect(np.zeros((64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((64, 64), dtype=np.uint8),
        np.zeros((64, 64, 4), dtype=np.uint8),
        np.zeros((64, 64, 3), dtype=np.float32),
        np.zeros((0, 64, 3), dtype=np.uint8),
        "not a frame",
    ],
)
def test_a_frame_that_is_not_hxwx3_uint8_is_an_invalid_frame(tmp_path, frame):
    detector = Detector(make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)]))
    with pytest.raises(InvalidFrame, match="expected an HxWx3 uint8") as err:
        detector.detect(frame)
    assert err.value.error_code is ErrorCode.FRAME


def test_unavailable_provider_falls_back_to_cpu_with_a_log_line(tmp_path, caplog):
    model = make_yolo_model(tmp_path / "m", CLASSES, [ModelBox(32, 32, 8, 8, 0, 0.9)])
    cfg = DetectorConfig(providers=["tensorrt"])
    assert cfg.providers == ["TensorrtExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="edge.judge.detector"):
        detector = Detector(model, cfg)
    assert detector.providers == ("CPUExecutionProvider",)
    assert "falling back to CPUExecutionProvider" in caplog.text
    assert len(detector.detect(np.zeros((64, 64, 3), dtype=np.uint8)).detections) == 1


def test_provider_names_are_expanded_and_typos_refused():
    assert DetectorConfig(providers=["CUDA", "cpu"]).providers == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(ValidationError, match="unknown provider 'cdua'"):
        DetectorConfig(providers=["cdua"])
    with pytest.raises(ValidationError, match="extra"):
        DetectorConfig.model_validate({"providers": ["cpu"], "thread": 2})


def test_missing_model_folder_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(LinesideError, match="model card missing"):
        Detector(tmp_path / "nowhere")
