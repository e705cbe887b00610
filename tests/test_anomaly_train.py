"""The anomaly kind's training: a tiny PatchCore model trained offline on rendered parts, exported with its
card, thresholds chosen (or refused) on held-out parts, the chunked bank search exact and memory-bounded."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
import torch
from pydantic import ValidationError

from edge.errors import LinesideError
from edge.modelstore.card import ModelCard, load_verified
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
from training.judges.anomaly_threshold import auroc, choose_threshold
from training.judges.anomaly_train import (
    AnomalySettings,
    find_data,
    greedy_coreset,
    pca_projection,
    train_anomaly,
)
from training.judges.backbone import build_backbone, locate_weights
from training.synth import write_dataset

torch.set_num_threads(1)
IMGSZ = 128
_ATTEMPTS: list[str] = []
_WATCHING: list[bool] = []


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if _WATCHING and event in {"socket.getaddrinfo", "socket.connect"}:
        if event == "socket.connect" and isinstance(args[1], str):
            return  # AF_UNIX
        _ATTEMPTS.append(f"{event} {args[:2]!r}")
        raise ConnectionRefusedError("test: no network")


@functools.cache
def _install_guard() -> None:
    sys.addaudithook(_guard)  # audit hooks stay for the process: inert outside network_watch()


@contextmanager
def network_watch() -> Iterator[list[str]]:
    """The test's own guard, independent of lineside's: any lookup or connect is recorded and refused."""
    _install_guard()
    _ATTEMPTS.clear()
    _WATCHING.append(True)
    try:
        yield _ATTEMPTS
    finally:
        _WATCHING.clear()


def settings(tmp: Path, data: Path, out: str, **extra: Any) -> AnomalySettings:
    values: dict[str, Any] = {
        "data": data, "out": tmp / out, "work": tmp / "work", "name": "parts", "imgsz": IMGSZ,
        "coreset_ratio": 0.1, "max_bank": 2000, "chunk_rows": 100, "device": "cpu",
    }  # fmt: skip
    return AnomalySettings(**(values | extra))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, model folder): 48 rendered train parts (15 good), 12 val (4 good, 8 defective).

    The target escape rate is 0.4: 15 good images are too few for the 5 % a real line asks for.
    """
    tmp = tmp_path_factory.mktemp("anomaly")
    data = write_dataset(tmp / "parts", 48, 12, seed=0).parent
    with network_watch() as attempts:
        out = train_anomaly(settings(tmp, data, "model", target_escape=0.4), progress=lambda _: None)
    assert attempts == []
    return data, out


def val_scores(model_dir: Path, data: Path) -> tuple[list[float], list[float]]:
    """Val scores as the appliance's anomaly stage computes them (edge's own judge, whole frame)."""
    from edge.judge.inspector import Inspector, load_model
    from edge.station.config import RecipeConfig

    inspector = Inspector.load(RecipeConfig(number=1, name="a", model=model_dir), load_model(model_dir))
    good: list[float] = []
    defective: list[float] = []
    for item in read_split(data, "val").items:
        frame = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
        assert frame is not None
        (stage,) = inspector.inspect(frame).stages
        assert stage.score is not None
        (defective if item.defective else good).append(stage.score)
    return good, defective


def test_exported_model_matches_its_card(trained: tuple[Path, Path]) -> None:
    card, onnx_path = load_verified(trained[1])
    assert (card.task, card.output.layout, card.classes) == ("anomaly", "anomaly_map", ("anomaly",))
    assert card.anomaly is not None and card.backbone is not None
    assert card.anomaly.threshold_source == "validation" and card.anomaly.quantile is None
    assert (card.anomaly.feature_dim, card.anomaly.layers, card.anomaly.chunk_rows) == (152, (2, 3), 100)
    assert card.thresholds.pixel == card.thresholds.score
    assert {"auroc", "escape_rate", "overkill_rate"} <= set(card.metrics)
    model = onnx.load(str(onnx_path))
    assert model.opset_import[0].version == 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {
        "lineside.task": "anomaly",
        "lineside.backbone_sha256": card.backbone.weights_sha256,
        "lineside.bank_size": str(card.anomaly.bank_size),
        "lineside.chunk_rows": "100",
    }
    shapes = {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*model.graph.input, *model.graph.output]
    }
    assert shapes == {"images": [1, 3, IMGSZ, IMGSZ], "score": [1], "heatmap": [1, IMGSZ, IMGSZ]}


def test_defective_parts_score_higher_than_good_on_average(trained: tuple[Path, Path]) -> None:
    good, defective = val_scores(trained[1], trained[0])
    assert np.mean(defective) > np.mean(good)
    card = ModelCard.model_validate_json((trained[1] / "card.json").read_text())
    assert card.metrics["auroc"] == pytest.approx(auroc(np.array(good), np.array(defective)), abs=1e-4)
    threshold = card.thresholds.score
    assert threshold is not None and min(good) < threshold, "the threshold rejects every good part"


def test_rerun_of_a_finished_model_returns_it_untouched(trained: tuple[Path, Path]) -> None:
    data, out = trained
    before = (out / "model.onnx").stat().st_mtime_ns
    lines: list[str] = []
    train_anomaly(settings(out.parent, data, "model", target_escape=0.4), progress=lines.append)
    assert any("already trained" in line for line in lines)
    assert (out / "model.onnx").stat().st_mtime_ns == before


def test_val_without_defects_gives_a_good_quantile_threshold(trained: tuple[Path, Path]) -> None:
    data, first = trained
    goods = data.parent / "goods-only"
    shutil.copytree(data, goods)
    for item in read_split(goods, "val").items:
        if item.defective:
            item.image.unlink()
            item.label.unlink()
    shards = sorted((first.parent / "work").rglob("shard_*.npy"))
    stamps = [p.stat().st_mtime_ns for p in shards]
    with network_watch() as attempts:
        out = train_anomaly(settings(first.parent, goods, "good-only"), progress=lambda _: None)
    assert attempts == []
    assert [p.stat().st_mtime_ns for p in shards] == stamps, "cached train features were recomputed"
    card, _ = load_verified(out)
    assert card.anomaly is not None
    assert (card.anomaly.threshold_source, card.anomaly.quantile, card.anomaly.margin) == (
        "good_quantile", 0.99, 1.10,
    )  # fmt: skip
    good, defective = val_scores(out, goods)
    assert defective == []
    threshold = card.thresholds.score
    assert threshold == pytest.approx(float(np.quantile(good, 0.99)) * 1.10, rel=1e-5)
    assert threshold is not None and min(good) < threshold
    overkill = float(np.mean(np.array(good) >= threshold))
    assert "auroc" not in card.metrics and card.metrics["overkill_rate"] == pytest.approx(overkill, abs=1e-4)


@pytest.mark.parametrize(
    ("good", "defective", "target", "expected", "source"),
    [
        ([1, 2, 3], [5, 6, 7, 8], 0.25, 4.5, "validation"),  # one escape allowed: 6, halfway from 3
        ([1, 2, 3, 10], [4, 5, 6, 7], 0.0, 3.5, "validation"),  # no escape: below 4; 10 is overkill
        (list(range(1, 101)), [], 0.05, float(np.quantile(np.arange(1, 101), 0.99)) * 1.1, "good_quantile"),
    ],
)
def test_threshold_choice(
    good: list[float], defective: list[float], target: float, expected: float, source: str
) -> None:
    choice = choose_threshold(
        np.array(good, float), np.array(defective, float), target_escape=target, quantile=0.99, margin=1.1,
        where="val",
    )  # fmt: skip
    assert choice.source == source
    assert choice.score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("good", "defective", "quantile", "margin", "message"),
    [
        ([5, 6, 7], [1, 2, 3], 0.99, 1.1, "would reject all 3 good parts"),  # defects score below goods
        ([2, 2, 2], [], 0.5, 1.0, "would reject all 3 good parts"),  # quantile x margin at every good
        ([], [1, 2], 0.99, 1.1, "no good parts held out"),
    ],
)
def test_a_threshold_rejecting_every_good_part_is_refused(
    good: list[float], defective: list[float], quantile: float, margin: float, message: str
) -> None:
    with pytest.raises(LinesideError, match=message):
        choose_threshold(
            np.array(good, float), np.array(defective, float), target_escape=0.05, quantile=quantile,
            margin=margin, where="val",
        )  # fmt: skip


def test_chunked_bank_search_equals_unchunked_numpy() -> None:
    rng = np.random.default_rng(1)
    bank = rng.normal(size=(50, 152)).astype(np.float32)
    patches = rng.normal(size=(64, 152)).astype(np.float32)
    nearest = NearestGood(bank, chunk_rows=7)  # 8 chunks, the last of one row
    exact = ((patches[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    with torch.no_grad():
        found = nearest(torch.from_numpy(patches)).numpy()
    assert nearest.chunks == 8
    np.testing.assert_allclose(found, exact, rtol=1e-4, atol=1e-3)


def test_exported_chunked_model_gives_the_numpy_nearest_neighbour_map(tmp_path: Path) -> None:
    features = PatchFeatures(build_backbone(locate_weights())).eval()
    image = np.random.default_rng(2).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with torch.no_grad():
        patches = to_patches(features(torch.from_numpy(image))).numpy()
    bank = patches[::5] + np.random.default_rng(3).normal(0, 0.5, patches[::5].shape).astype(np.float32)
    model = AnomalyModel(features, NearestGood(bank, chunk_rows=9), IMGSZ).eval()
    path = export_anomaly(model, tmp_path / "model.onnx", IMGSZ, model_metadata("0" * 64, model.nearest))
    score, heatmap = run_session(ort_session(path), image)
    distances = np.sqrt(((patches[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2).min(axis=1))
    with torch.no_grad():
        expected = model.map(torch.from_numpy(distances.astype(np.float32))).numpy()
    np.testing.assert_allclose(heatmap, expected, rtol=1e-3, atol=2e-3)
    assert score == pytest.approx(float(expected.max()), rel=1e-3)


def test_exported_pca_model_searches_the_projected_patches(tmp_path: Path) -> None:
    features = PatchFeatures(build_backbone(locate_weights())).eval()
    image = np.random.default_rng(4).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    with torch.no_grad():
        patches = to_patches(features(torch.from_numpy(image))).numpy()
    projection = pca_projection(patches, 16, seed=0, progress=lambda _: None)
    noisy = patches[::4] + np.random.default_rng(5).normal(0, 0.5, patches[::4].shape)
    bank = np.asarray(noisy @ projection, np.float32)
    model = AnomalyModel(features, NearestGood(bank, chunk_rows=11), IMGSZ, projection=projection).eval()
    path = export_anomaly(model, tmp_path / "model.onnx", IMGSZ, model_metadata("0" * 64, model.nearest))
    score, heatmap = run_session(ort_session(path), image)
    projected = patches.astype(np.float64) @ projection
    distances = np.sqrt(((projected[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2).min(axis=1))
    with torch.no_grad():
        expected = model.map(torch.from_numpy(distances.astype(np.float32))).numpy()
    np.testing.assert_allclose(heatmap, expected, rtol=1e-3, atol=2e-3)
    assert score == pytest.approx(float(expected.max()), rel=1e-3)


def test_pca_projection_keeps_the_directions_of_most_variance_signed_the_same_every_time() -> None:
    rng = np.random.default_rng(6)
    # 3 strong directions hidden in 10 features, the rest small noise
    basis = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    strengths = np.array([10.0, 5.0, 3.0] + [0.1] * 7)
    patches = ((rng.normal(size=(2000, 10)) * strengths) @ basis.T).astype(np.float32)
    said: list[str] = []
    projection = pca_projection(patches, 3, seed=0, progress=said.append)
    assert projection.shape == (10, 3) and projection.dtype == np.float32
    # each direction found is one of the planted ones (up to sign), in order of strength
    np.testing.assert_allclose(np.abs(basis[:, :3].T @ projection), np.eye(3), atol=0.05)
    assert all(projection[np.abs(projection[:, k]).argmax(), k] > 0 for k in range(3))
    again = pca_projection(patches[::-1].copy(), 3, seed=0, progress=said.append)
    np.testing.assert_allclose(again, projection, atol=1e-4)
    assert "3 of 10 dimensions keep 99." in said[0]
    with pytest.raises(LinesideError, match="feature_dims: 11 is more than the 10 features"):
        pca_projection(patches, 11, seed=0, progress=said.append)


PEAK_PROBE = """
import json, sys, numpy as np, onnxruntime as ort
def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key + ":"))
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
image = np.random.default_rng(0).random((1, 3, int(sys.argv[2]), int(sys.argv[2])), dtype=np.float32)
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets VmHWM, the peak resident size, to the current one
session.run(None, {"images": image})
print(json.dumps({"before": before, "peak": status("VmHWM")}))
"""


def test_bank_search_memory_is_bounded_by_the_chunk_not_the_bank(tmp_path: Path) -> None:
    imgsz, rows, chunk = 256, 200_000, 4096
    bank = np.random.default_rng(0).normal(size=(rows, 152)).astype(np.float32)
    model = AnomalyModel(PatchFeatures(build_backbone(locate_weights())), NearestGood(bank, chunk), imgsz)
    path = export_anomaly(model, tmp_path / "model.onnx", imgsz, model_metadata("0" * 64, model.nearest))
    del bank, model
    probe = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, str(path), str(imgsz)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    measured = json.loads(probe.stdout)
    patches = (imgsz // 8) ** 2
    full_matrix = patches * rows * 4  # what a patches x bank search would hold: 819 MB
    grown = measured["peak"] - measured["before"]
    assert grown < 64 * 2**20 < full_matrix // 10, f"inference grew RSS by {grown >> 20} MiB"


def test_a_folder_of_good_images_is_split_for_the_threshold(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "parts", 10, 0, seed=0).parent
    folder = data / "images" / "train"
    found = find_data(folder, tmp_path / "work", progress=lambda _: None)
    assert (len(found.train_good), len(found.val_good), found.val_defective) == (8, 2, ())
    assert not set(found.train_good) & set(found.val_good)


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="epochs"):
        AnomalySettings(data=tmp_path, out=tmp_path, work=tmp_path, name="x", epochs=3)  # type: ignore[call-arg]


def test_greedy_coreset_is_the_textbook_k_center() -> None:
    rng = np.random.default_rng(3)
    patches = rng.standard_normal((500, 12)).astype(np.float32)
    chosen = greedy_coreset(torch.from_numpy(patches), 25, seed=0, progress=lambda _: None)
    # The textbook greedy k-center in float64: the same start, then always the farthest patch.
    reference = [int(chosen[0])]
    nearest = np.full(len(patches), np.inf)
    for _ in range(24):
        distance = ((patches.astype(np.float64) - patches[reference[-1]]) ** 2).sum(axis=1)
        nearest = np.minimum(nearest, distance)
        reference.append(int(np.argmax(nearest)))
    assert chosen.tolist() == reference
    assert len(set(chosen.tolist())) == 25


def test_int8_copy_gets_a_bank_of_its_own_features_and_a_threshold_of_its_own(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    from training.judges.int8_bank import rebank_int8, search_chunks
    from training.judges.judge_int8 import judge_parity, quantize_judge

    data, model = trained
    parts = find_data(data, tmp_path / "work", lambda _: None)
    val = [item.image for item in read_split(data, "val").items]
    int8 = tmp_path / "int8"
    quantize_judge(model, list(parts.train_good[:8]), int8)
    fp32_bank = json.loads(json.dumps(judge_parity(int8, model, val)))
    fp32_card = load_verified(model)[0]
    card = rebank_int8(int8, parts.train_good, parts.val_good, parts.val_defective, lambda _: None)
    # the appliance loads it: sha256, bank size and chunking in the metadata all agree with the card
    loaded, _ = load_verified(int8)
    assert loaded == card and card.precision == "int8"
    assert card.anomaly is not None and fp32_card.anomaly is not None
    assert card.anomaly.bank_size == fp32_card.anomaly.bank_size
    assert "rebuilt from the INT8 graph's own features" in str(card.training.args["int8_bank"])
    assert card.thresholds.score is not None
    assert card.metrics["threshold"] == pytest.approx(card.thresholds.score, abs=1e-6)
    assert card.thresholds.score != fp32_card.thresholds.score
    own_bank = judge_parity(int8, model, val)
    # its own features as the bank: its scores come closer to the fp32 model's than against fp32 rows
    assert own_bank["max_score_diff"] < fp32_bank["max_score_diff"]
    rows = onnx.load(str(int8 / "model.onnx"))
    _, chunks = search_chunks(rows)
    assert len(chunks) == fp32_card.anomaly.bank_size // fp32_card.anomaly.chunk_rows + (
        fp32_card.anomaly.bank_size % fp32_card.anomaly.chunk_rows > 0
    )


def test_a_graph_without_a_bank_search_is_not_rebanked(tmp_path: Path) -> None:
    from tests.models import ModelBox, make_yolo_model
    from training.judges.int8_bank import search_chunks

    make_yolo_model(tmp_path / "det", ["scratch"], [ModelBox(10.0, 10.0, 5.0, 5.0, 0, 0.9)])
    with pytest.raises(LinesideError, match="no single memory-bank search"):
        search_chunks(onnx.load(str(tmp_path / "det" / "model.onnx")))
