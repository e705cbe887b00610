"""Parity: the exported model through edge agrees with its PyTorch checkpoint, and the check catches a
pre-processing mismatch. Also ONNX against ONNX (the fp32/INT8 API) on the shipped demo model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from edge.errors import LinesideError
from edge.modelstore.card import (
    InputSpec,
    ModelCard,
    Thresholds,
    TrainingInfo,
    read_card,
    sha256_file,
    write_card,
)
from tests.line import lineside
from training import synth
from training.metrics import ImageBoxes
from training.parity import FP32_TOLERANCE, ParityTolerance, check_parity, compare_image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo" / "1.0.0"
TINY_IMGSZ = 64
SCORE_LIFT = 5.0  # logit added to the class biases: one epoch leaves scores near 0.001, too weak to compare


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("parity-data")
    synth.write_dataset(data, 16, 8, 5)
    return data


def _val_images(data: Path) -> list[Path]:
    return sorted((data / "images" / "val").glob("*.png"))


def _read(path: Path) -> Any:
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def _make_responsive(weights: Path, images: list[Path]) -> None:
    """After one epoch the model barely looks at its input: BatchNorm still holds its initial statistics,
    so activations fade layer by layer. Recalibrate them on a batch of real images (train-mode forward
    with momentum 1), then raise every class logit so boxes score well above the parity floor."""
    import cv2
    import numpy as np
    import torch

    checkpoint: dict[str, Any] = torch.load(weights, map_location="cpu", weights_only=False)
    model = (checkpoint.get("ema") or checkpoint["model"]).float()
    frames = [cv2.resize(_read(p), (TINY_IMGSZ, TINY_IMGSZ))[:, :, ::-1] for p in images]
    batch = torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).copy()).float() / 255.0
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for norm in norms:
            norm.momentum = 1.0
        model.train()
        model(batch)
        model.eval()
        for norm in norms:
            norm.momentum = 0.03
        for branch in model.model[-1].cv3:
            branch[-1].bias += SCORE_LIFT
    checkpoint["model"], checkpoint["ema"] = model, None
    torch.save(checkpoint, weights)


@pytest.fixture(scope="module")
def tiny(rendered: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1-epoch YOLOv8n at 64 px (offline), its checkpoint and its exported model folder with a card."""
    from training.train import offline_ultralytics

    work = tmp_path_factory.mktemp("parity-work").resolve()
    yolo = offline_ultralytics(work)
    yolo("yolov8n.yaml").train(
        data=str(rendered / "data.yaml"), epochs=1, imgsz=TINY_IMGSZ, batch=8, device="cpu", workers=0,
        seed=0, deterministic=True, pretrained=False, amp=False, plots=False, val=False,
        project=str(work / "runs"), name="tiny", exist_ok=True,
    )  # fmt: skip
    weights = work / "runs" / "tiny" / "weights" / "last.pt"
    _make_responsive(weights, sorted((rendered / "images" / "train").glob("*.png")))
    exported = yolo(str(weights)).export(
        format="onnx", imgsz=TINY_IMGSZ, opset=17, simplify=True, dynamic=False, batch=1, device="cpu"
    )
    model = work / "model"
    model.mkdir()
    shutil.copyfile(exported, model / "model.onnx")
    card = ModelCard(
        name="tiny",
        version="0.0.1",
        sha256=sha256_file(model / "model.onnx"),
        input=InputSpec(width=TINY_IMGSZ, height=TINY_IMGSZ),
        classes=synth.CLASSES,
        thresholds=Thresholds(confidence=0.25, iou=0.45),
        training=TrainingInfo(data_fingerprint="0" * 64, code_version="test"),
    )
    write_card(model, card)
    return weights, model


@pytest.mark.slow
def test_exported_model_through_edge_matches_its_pytorch_checkpoint(
    tiny: tuple[Path, Path], rendered: Path
) -> None:
    weights, model = tiny
    report = check_parity(model, weights, _val_images(rendered))
    assert report.passed, report.summary()
    assert report.tolerance == FP32_TOLERANCE
    compared = sum(i.paired for i in report.images)
    assert compared >= 5, "too few boxes above the floor to prove anything"
    assert report.to_json()["max_score_diff"] < 0.005


@pytest.mark.slow
@pytest.mark.parametrize("mismatch", ["no_normalise", "stretch"])
def test_parity_fails_when_pre_processing_differs_from_training(
    tiny: tuple[Path, Path], rendered: Path, mismatch: Any
) -> None:
    weights, model = tiny
    report = check_parity(model, weights, _val_images(rendered), mismatch=mismatch)
    assert not report.passed and report.worst is not None
    assert report.worst.image in report.summary() and "FAILED" in report.summary()


@pytest.mark.slow
def test_cli_parity_passes_and_reports_the_worst_image(
    tiny: tuple[Path, Path], rendered: Path, tmp_path: Path
) -> None:
    weights, model = tiny
    done = lineside("eval", "--parity", "--model", str(model), "--weights", str(weights),
                    "--data", str(rendered), "--limit", "4", "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "parity PASSED: 4/4 images" in done.stdout
    assert json.loads((tmp_path / "parity.json").read_text())["passed"] is True
    # Another model altogether (ONNX against ONNX, no torch) must fail with exit 1, naming the worst image.
    done = lineside("eval", "--parity", "--model", str(model), "--reference-model", str(DEMO),
                    "--data", str(rendered), "--limit", "4")  # fmt: skip
    assert done.returncode == 1 and "parity FAILED" in done.stdout and "worst part_" in done.stdout


def test_onnx_against_onnx_passes_for_the_same_model_and_fails_on_a_normalisation_mismatch(
    rendered: Path, tmp_path: Path
) -> None:
    images = _val_images(rendered)[:4]
    copy = tmp_path / "copy"
    shutil.copytree(DEMO, copy)
    same = check_parity(copy, DEMO, images)
    assert same.passed and same.to_json()["max_score_diff"] == 0.0
    broken = check_parity(copy, DEMO, images, mismatch="no_normalise")
    assert not broken.passed


def test_compare_image_tolerates_a_box_that_sits_at_the_floor_on_one_side_only() -> None:
    tol = ParityTolerance(score=0.02, iou=0.9, conf_floor=0.05)
    reference = ImageBoxes.of([0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [0.80, 0.06])
    candidate = ImageBoxes.of([0], [[0, 0, 10, 10.2]], [0.79])
    result = compare_image("x", candidate, reference, tol)
    assert result.ok(tol) and result.paired == 1 and result.unpaired == 0
    clear_miss = ImageBoxes.of([0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]], [0.80, 0.40])
    assert compare_image("x", candidate, clear_miss, tol).unpaired == 1
    moved = ImageBoxes.of([0], [[0, 0, 10, 13]], [0.80])
    assert not compare_image("x", candidate, moved, tol).ok(tol)


def test_models_with_different_classes_are_not_compared(rendered: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(DEMO, other)
    card = read_card(other)
    renamed = card.model_copy(update={"classes": ("a", "b", "c"), "thresholds": Thresholds()})
    write_card(other, ModelCard.model_validate(renamed.model_dump(by_alias=True)))
    with pytest.raises(LinesideError, match="classes differ"):
        check_parity(other, DEMO, _val_images(rendered)[:1])
