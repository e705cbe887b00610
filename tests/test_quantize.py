"""INT8 quantisation: the head stays fp32, calibration goes through edge's pre-processing, the card
is the INT8 model's own, and the INT8 demo model judges the demo parts as fp32 does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.judge.detector.detector import Detector
from edge.modelstore.card import load_verified
from tests.models import ModelBox, make_yolo_model
from training.quantize import calibration_files, compare_verdicts, fp32_nodes, quantize_model

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo" / "1.0.0"
DEMO_INT8 = ROOT / "models" / "demo" / "1.0.0-int8"
PARTS = ROOT / "lineside" / "demo" / "parts"


def test_ultralytics_head_keeps_its_final_convs_and_decode_in_fp32() -> None:
    model = onnx.load(str(DEMO / "model.onnx"))

    kept = set(fp32_nodes(model))

    for name in ("/model.22/cv2.0/cv2.0.2/Conv", "/model.22/cv3.2/cv3.2.2/Conv", "/model.22/Sigmoid"):
        assert name in kept
    assert {"/model.22/dfl/conv/Conv", "/model.22/Concat_3"} <= kept
    assert "/model.22/cv3.0/cv3.0.0/conv/Conv" not in kept  # the 3x3 branch convs are quantised
    assert not any(n.startswith("/model.0/") for n in kept)  # and the backbone
    assert set(fp32_nodes(model, "head")) > kept


def test_a_graph_without_an_ultralytics_head_keeps_everything_after_its_last_convs(tmp_path: Path) -> None:
    model_dir = make_yolo_model(tmp_path / "m", ["a"], [ModelBox(8, 8, 4, 4, 0, 0.9)])
    model = onnx.load(str(model_dir / "model.onnx"))

    kept = fp32_nodes(model)

    assert len(kept) == len(model.graph.node)  # no Conv anywhere: nothing is quantised
    assert {"Concat", "Mul"} <= {n.op_type for n in model.graph.node}


def test_calibration_files_spread_over_the_folder_and_refuse_an_empty_one(tmp_path: Path) -> None:
    files = calibration_files(PARTS, 5)
    everything = sorted(PARTS.glob("*.png"))
    assert len(files) == 5 and files[0] == everything[0] and files[-1] == everything[-1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(LinesideError, match="no calibration images"):
        calibration_files(tmp_path / "empty", 5)


def test_quantize_refuses_a_model_that_is_not_fp32(tmp_path: Path) -> None:
    model_dir = make_yolo_model(tmp_path / "u8", ["a"], [ModelBox(8, 8, 4, 4, 0, 0.9)], dtype="uint8")
    with pytest.raises(LinesideError, match="fp32"):
        quantize_model(model_dir, PARTS, tmp_path / "out", max_images=2)


@pytest.mark.slow
def test_quantized_demo_model_has_its_own_card_loads_and_agrees_with_fp32(tmp_path: Path) -> None:
    out = tmp_path / "int8"
    card = quantize_model(DEMO, PARTS, out, max_images=8)

    verified, onnx_path = load_verified(out)  # the card's sha256 is the INT8 file's
    assert verified == card and card.precision == "int8" and card.version == "1.0.0-int8"
    how = card.training.args["int8"]
    assert isinstance(how, dict) and how["fp32_nodes"] == len(fp32_nodes(onnx.load(str(DEMO / "model.onnx"))))
    ops = {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    detector = Detector(out, DetectorConfig(threads=1, warmup_runs=1))
    assert detector.detect(np.full((480, 640, 3), 90, np.uint8)).infer_ms > 0
    parts = sorted(PARTS.glob("*.png"))[::6]
    agreement = compare_verdicts(DEMO, out, parts)
    assert agreement.same >= agreement.total - 1, agreement.differing


def test_shipped_int8_demo_model_gives_the_fp32_verdict_on_at_least_58_of_60_parts() -> None:
    if not DEMO_INT8.is_dir():
        pytest.skip("no INT8 demo model shipped (models/demo/1.0.0-int8)")
    parts = sorted(PARTS.glob("*.png"))
    agreement = compare_verdicts(DEMO, DEMO_INT8, parts)
    assert agreement.total == len(parts) >= 60
    assert agreement.same >= 58, agreement.differing


@pytest.mark.slow
def test_export_twin_at_another_size_is_a_yolov8n_with_the_cards_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("needs the train extra (ultralytics)")
    from training.bench_models import export_at

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    card = export_at(DEMO, 96, tmp_path / "twin")

    assert list((tmp_path / "cwd").iterdir()) == []  # nothing left in the working directory
    assert sorted(p.name for p in (tmp_path / "twin").iterdir()) == ["card.json", "model.onnx"]
    assert card.version == "1.0.0-96-twin" and (card.input.width, card.input.height) == (96, 96)
    detector = Detector(tmp_path / "twin", DetectorConfig(threads=1, warmup_runs=1))
    assert detector.card.classes == card.classes
