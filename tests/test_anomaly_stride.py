"""Anomaly models with a patch stride of 16: each patch is the mean of 2 x 2 stride-8 patches, the bank and
the search hold a quarter of the patches, the exported map still covers the whole input, and the card
says which stride the model was built with."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)

from edge.errors import LinesideError
from edge.modelstore.card import load_verified
from training.evaldata import read_split
from training.judges.anomaly_export import (
    AnomalyModel,
    NearestGood,
    PatchFeatures,
    export_anomaly,
    model_metadata,
    ort_session,
    run_session,
    to_patches,
)
from training.judges.anomaly_train import AnomalySettings, find_data, train_anomaly
from training.judges.backbone import build_backbone, locate_weights
from training.synth import write_dataset

torch.set_num_threads(1)
IMGSZ = 128


def test_stride_16_patches_are_the_means_of_2_by_2_stride_8_patches() -> None:
    weights = locate_weights()
    fine = PatchFeatures(build_backbone(weights)).eval()
    coarse = PatchFeatures(build_backbone(weights), stride=16).eval()
    image = torch.from_numpy(np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32))
    with torch.no_grad():
        at_8, at_16 = fine(image), coarse(image)
    assert at_8.shape == (1, 152, IMGSZ // 8, IMGSZ // 8)
    assert at_16.shape == (1, 152, IMGSZ // 16, IMGSZ // 16)
    torch.testing.assert_close(at_16, F.avg_pool2d(at_8, 2))


def test_a_patch_stride_other_than_8_or_16_is_refused() -> None:
    with pytest.raises(LinesideError, match="patch_stride: 12"):
        PatchFeatures(build_backbone(locate_weights()), stride=12)


def test_exported_stride_16_model_gives_the_numpy_nearest_neighbour_map_over_the_whole_input(
    tmp_path: Path,
) -> None:
    features = PatchFeatures(build_backbone(locate_weights()), stride=16).eval()
    image = np.random.default_rng(2).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with torch.no_grad():
        patches = to_patches(features(torch.from_numpy(image))).numpy()
    assert patches.shape == ((IMGSZ // 16) ** 2, 152)
    bank = patches[::3] + np.random.default_rng(3).normal(0, 0.5, patches[::3].shape).astype(np.float32)
    model = AnomalyModel(features, NearestGood(bank, chunk_rows=7), IMGSZ).eval()
    assert model.map.grid == (IMGSZ // 16, IMGSZ // 16)
    path = export_anomaly(model, tmp_path / "model.onnx", IMGSZ, model_metadata("0" * 64, model.nearest))
    score, heatmap = run_session(ort_session(path), image)
    assert heatmap.shape == (1, IMGSZ, IMGSZ)
    distances = np.sqrt(((patches[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2).min(axis=1))
    with torch.no_grad():
        expected = model.map(torch.from_numpy(distances.astype(np.float32))).numpy()
    np.testing.assert_allclose(heatmap, expected, rtol=1e-3, atol=2e-3)
    assert score == pytest.approx(float(expected.max()), rel=1e-3)


def test_a_stride_16_model_trains_its_bank_from_a_quarter_of_the_patches_and_judges_in_edge(
    tmp_path: Path,
) -> None:
    from edge.judge.inspector import Inspector, load_model
    from edge.station.config import RecipeConfig

    data = write_dataset(tmp_path / "parts", 48, 12, seed=0).parent
    settings = AnomalySettings(
        data=data, out=tmp_path / "model", work=tmp_path / "work", name="parts", imgsz=IMGSZ,
        coreset_ratio=0.1, max_bank=2000, chunk_rows=50, device="cpu", target_escape=0.4, patch_stride=16,
    )  # fmt: skip
    train_anomaly(settings, progress=lambda _: None)
    card, _ = load_verified(settings.out)
    assert card.anomaly is not None and card.anomaly.patch_stride == 16
    good_images = len(find_data(data, tmp_path / "work", lambda _: None).train_good)
    patches_seen = good_images * (IMGSZ // 16) ** 2
    assert card.anomaly.bank_size == math.floor(0.1 * patches_seen)  # a quarter of stride 8's bank
    inspector = Inspector.load(RecipeConfig(number=1, name="a", model=settings.out), load_model(settings.out))
    item = read_split(data, "val").items[0]
    frame = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    assert frame is not None
    (stage,) = inspector.inspect(frame).stages
    assert stage.score is not None and stage.heatmap is not None
    assert stage.heatmap.shape[1] == IMGSZ  # the map covers the whole (letterboxed) width of the part
