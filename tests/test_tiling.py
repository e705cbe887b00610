"""Tiled detection (edge/judge/detector/tiling.py) and tiled training data (training/tiling.py); no torch."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig, TilingConfig
from edge.judge.detector.detector import Detector
from edge.judge.detector.tiling import merge_detections, tile_grid, tile_origins
from edge.judge.inspection import Detection
from edge.modelstore.card import InputSpec, ModelCard, TrainingInfo, sha256_file, write_card
from training.fingerprint import scan_dataset
from training.tiling import tile_dataset, tile_labels

STRIDE = 16


def make_grid_model(model_dir: Path, size: int, *, batch: int | str = 1, **args: object) -> Path:
    """A real ONNX detector with a YOLOv8 head: one anchor per 16 px cell, box = the cell, score = the
    cell's mean brightness (0..1). What it finds depends on the pixels, like a trained model's."""
    cells = size // STRIDE
    ys, xs = np.mgrid[0:cells, 0:cells]
    boxes = np.stack(
        [(xs + 0.5) * STRIDE, (ys + 0.5) * STRIDE, np.full(xs.shape, STRIDE), np.full(xs.shape, STRIDE)]
    )
    boxes = boxes.reshape(1, 4, -1).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["grey"], axes=[1], keepdims=1),
        helper.make_node(
            "AveragePool", ["grey"], ["cells"], kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]
        ),
        helper.make_node("Reshape", ["cells", "flat"], ["scores"]),
        helper.make_node("Mul", ["scores", "zero"], ["scores_zero"]),
        helper.make_node("Add", ["scores_zero", "boxes"], ["boxes_n"]),  # (N, 4, A): boxes for each image
        helper.make_node("Concat", ["boxes_n", "scores"], ["output0"], axis=1),
    ]
    initializers = [
        numpy_helper.from_array(boxes, "boxes"),
        numpy_helper.from_array(np.array([0, 1, -1], np.int64), "flat"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    graph = helper.make_graph(
        nodes,
        "grid",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 5, cells * cells])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    model_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(model_dir / "model.onnx"))
    card = ModelCard(
        name="grid",
        version=str(size),
        sha256=sha256_file(model_dir / "model.onnx"),
        input=InputSpec(width=size, height=size),
        classes=("spot",),
        training=TrainingInfo(data_fingerprint="0" * 64, code_version="tests", args=args),
    )
    write_card(model_dir, card)
    return model_dir


def frame_with_spots(spots: list[tuple[int, int]], size: int = 128) -> np.ndarray:
    """A black frame with white 16 px squares whose top-left corners are `spots`."""
    frame = np.zeros((size, size, 3), np.uint8)
    for x, y in spots:
        frame[y : y + STRIDE, x : x + STRIDE] = 255
    return frame


def boxes_of(detections: tuple[Detection, ...]) -> list[tuple[float, ...]]:
    return sorted(tuple(round(v, 3) for v in (*d.box, d.confidence)) for d in detections)


@pytest.mark.parametrize(
    ("length", "size", "overlap"), [(128, 64, 0.25), (640, 256, 0.2), (100, 64, 0.0), (1000, 320, 0.5)]
)
def test_tiles_cover_the_frame_with_at_least_the_asked_overlap(length, size, overlap):
    origins = tile_origins(length, size, overlap)
    assert origins[0] == 0 and origins[-1] == length - size
    for a, b in itertools.pairwise(origins):
        assert a + size - b >= overlap * size  # neighbours share at least overlap * size pixels
        assert b > a


def test_a_frame_no_larger_than_a_tile_is_one_tile():
    assert tile_grid(60, 40, 64, 0.2) == [(0, 0, 60, 40)]


def test_tiled_detection_equals_untiled_when_the_defect_lies_inside_one_tile(tmp_path):
    whole = Detector(make_grid_model(tmp_path / "whole", 128))
    tiled = Detector(
        make_grid_model(tmp_path / "tile", 64), DetectorConfig(tiling=TilingConfig(size=64, overlap=0.25))
    )
    frame = frame_with_spots([(16, 96)])  # tiles start at 0, 32, 64: only x 0..64 / y 64..128 hold it
    expected = whole.detect(frame).detections
    assert len(expected) == 1
    assert boxes_of(tiled.detect(frame).detections) == boxes_of(expected)


def test_defect_on_a_tile_seam_is_found_once(tmp_path):
    tiled = Detector(
        make_grid_model(tmp_path / "tile", 64), DetectorConfig(tiling=TilingConfig(size=64, overlap=0.25))
    )
    frame = frame_with_spots([(32, 32)])  # inside the overlap of four tiles
    seen_by = [
        t for t in tile_grid(128, 128, 64, 0.25) if t[0] <= 32 and t[2] >= 48 and t[1] <= 32 and t[3] >= 48
    ]
    assert len(seen_by) == 4
    detections = tiled.detect(frame).detections
    assert boxes_of(detections) == [(32.0, 32.0, 48.0, 48.0, 1.0)]


def test_batched_tiles_give_the_same_detections_as_one_tile_at_a_time(tmp_path):
    config = DetectorConfig(tiling=TilingConfig(size=64, overlap=0.25, max_batch=4))
    single = Detector(make_grid_model(tmp_path / "single", 64), config)
    batched = Detector(make_grid_model(tmp_path / "batched", 64, batch="N"), config)
    frame = frame_with_spots([(0, 0), (32, 32), (96, 112), (112, 0)])
    result = batched.detect(frame)
    assert boxes_of(result.detections) == boxes_of(single.detect(frame).detections)
    assert len(result.detections) == 4 and result.infer_ms > 0


def test_tile_size_comes_from_the_card_the_model_was_trained_with(tmp_path):
    model = make_grid_model(tmp_path / "tile", 64, tiling={"size": 64, "overlap": 0.25})
    tiled = Detector(model, DetectorConfig(tiling=TilingConfig()))
    assert boxes_of(tiled.detect(frame_with_spots([(96, 96)])).detections) == [
        (96.0, 96.0, 112.0, 112.0, 1.0)
    ]


def test_tiling_without_a_tile_size_anywhere_is_refused(tmp_path):
    with pytest.raises(LinesideError, match=r"tiling\.size"):
        Detector(make_grid_model(tmp_path / "tile", 64), DetectorConfig(tiling=TilingConfig()))


def test_tiling_config_refuses_unknown_keys_and_silly_overlap():
    with pytest.raises(ValueError, match="overlap"):
        DetectorConfig.model_validate({"tiling": {"size": 64, "overlap": 0.95}})
    with pytest.raises(ValueError, match="stride"):
        DetectorConfig.model_validate({"tiling": {"size": 64, "stride": 32}})


def test_merge_keeps_different_classes_that_overlap():
    a = Detection(class_id=0, class_name="a", confidence=0.9, box=(0, 0, 10, 10))
    b = Detection(class_id=1, class_name="b", confidence=0.8, box=(0, 0, 10, 10))
    a_again = Detection(class_id=0, class_name="a", confidence=0.7, box=(1, 0, 11, 10))
    assert merge_detections([a_again, b, a], 0.45, 10) == (a, b)


def test_tile_labels_clip_boxes_and_drop_mostly_hidden_ones():
    boxes = [(0, 10.0, 10.0, 30.0, 30.0), (1, 56.0, 0.0, 72.0, 8.0), (0, 60.0, 40.0, 100.0, 50.0)]
    labels = tile_labels(boxes, (0, 0, 64, 64), min_visibility=0.4)
    # the first is whole; the second is half inside (kept, clipped to x 56..64); the third 10% (dropped)
    assert [
        (c, round(cx * 64, 3), round(cy * 64, 3), round(w * 64, 3), round(h * 64, 3))
        for c, cx, cy, w, h in labels
    ] == [
        (0, 20.0, 20.0, 20.0, 20.0),
        (1, 60.0, 4.0, 8.0, 8.0),
    ]


def test_tile_dataset_writes_each_tile_with_its_own_labels(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "val"):
        (data / "images" / split).mkdir(parents=True)
        (data / "labels" / split).mkdir(parents=True)
        cv2.imwrite(str(data / "images" / split / "a.png"), frame_with_spots([(100, 8)]))
        (data / "labels" / split / "a.txt").write_text("0 0.84375 0.125 0.125 0.125\n")
    (data / "data.yaml").write_text(
        yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val", "names": ["spot"]})
    )
    summary = scan_dataset(data, tmp_path / "work", progress=lambda _: None)
    tiled_yaml = tile_dataset(
        summary, tmp_path / "work", size=64, overlap=0.25, min_visibility=0.4, progress=lambda _: None
    )
    tiles = sorted((tiled_yaml.parent / "images" / "train").glob("*.png"))
    assert len(tiles) == 9
    labelled = {p.stem: (tiled_yaml.parent / "labels" / "train" / f"{p.stem}.txt").read_text() for p in tiles}
    # the spot (x 100..116, y 8..24) lies in the tiles starting at x 64 and y 0 only
    assert [k for k, v in labelled.items() if v] == ["a__x64_y0"]
    assert labelled["a__x64_y0"].split()[1:] == ["0.687500", "0.250000", "0.250000", "0.250000"]
    tile = cv2.imread(str(tiled_yaml.parent / "images" / "train" / "a__x64_y0.png"))
    assert tile is not None
    assert tile.shape == (64, 64, 3) and tile[16, 40].min() == 255
    # unchanged input: the tiles are reused, not cut again
    stamp = (tiled_yaml.parent / "complete.json").stat().st_mtime_ns
    tile_dataset(
        summary, tmp_path / "work", size=64, overlap=0.25, min_visibility=0.4, progress=lambda _: None
    )
    assert (tiled_yaml.parent / "complete.json").stat().st_mtime_ns == stamp
