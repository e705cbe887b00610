"""The synthetic part renderer, the dataset and demo frames it writes, and the shipped demo model."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from edge.modelstore.card import load_verified
from training import demo_model, synth

REPO = Path(__file__).resolve().parent.parent


def _render(seed: int, defective: bool | None = None) -> tuple[np.ndarray, list[synth.Label]]:
    return synth.render_part(np.random.default_rng(seed), defective=defective)


def test_same_seed_renders_the_same_frame_and_labels() -> None:
    first, second = _render(11), _render(11)
    assert np.array_equal(first[0], second[0])
    assert first[1] == second[1]


def test_different_seeds_render_different_frames() -> None:
    assert not np.array_equal(_render(1)[0], _render(2)[0])


def test_frame_is_a_bgr_camera_frame_of_the_requested_size() -> None:
    image, _ = synth.render_part(np.random.default_rng(5), size=(320, 240))
    assert image.shape == (240, 320, 3)
    assert image.dtype == np.uint8
    default, _ = _render(5)
    assert default.shape == (480, 640, 3)


def test_labels_are_normalised_boxes_inside_the_image_and_about_forty_percent_are_good() -> None:
    good = 0
    for seed in range(40):
        _, labels = _render(1000 + seed)
        good += not labels
        assert len(labels) <= 3
        for cls, cx, cy, w, h in labels:
            assert cls in range(len(synth.CLASSES))
            assert 0 < w <= 1 and 0 < h <= 1
            assert cx - w / 2 >= 0 and cx + w / 2 <= 1, (cls, cx, w)
            assert cy - h / 2 >= 0 and cy + h / 2 <= 1, (cls, cy, h)
    assert 8 <= good <= 26  # about 40% of 40, with room for chance


def test_good_parts_have_no_labels_and_defective_parts_have_one_to_three() -> None:
    for seed in range(4):
        assert _render(seed, defective=False)[1] == []
        assert 1 <= len(_render(seed, defective=True)[1]) <= 3


def test_every_defect_still_stands_out_at_half_resolution() -> None:
    for seed in range(10):
        image, labels = _render(200 + seed, defective=True)
        grey = cv2.cvtColor(cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        for cls, cx, cy, w, h in labels:
            x0, x1 = int((cx - w / 2) * 320), int(np.ceil((cx + w / 2) * 320))
            y0, y1 = int((cy - h / 2) * 240), int(np.ceil((cy + h / 2) * 240))
            crop = grey[y0:y1, x0:x1].astype(np.int32)
            contrast = int(np.abs(crop - np.median(crop)).max())
            assert contrast >= 20, f"{synth.CLASSES[cls]} in seed {200 + seed} has contrast {contrast}"


def test_write_dataset_writes_matching_image_and_label_pairs(tmp_path: Path) -> None:
    data_yaml = synth.write_dataset(tmp_path / "data", n_train=4, n_val=2, seed=3)
    data = yaml.safe_load(data_yaml.read_text())
    assert Path(data["path"]) == (tmp_path / "data").resolve()
    assert data["names"] == dict(enumerate(synth.CLASSES))
    for split, count in (("train", 4), ("val", 2)):
        images = sorted((tmp_path / "data" / data[split]).glob("*.png"))
        labels = sorted((tmp_path / "data" / "labels" / split).glob("*.txt"))
        assert len(images) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
        for image_path, label_path in zip(images, labels, strict=True):
            frame = cv2.imread(str(image_path))
            assert frame is not None and frame.shape == (480, 640, 3)
            for line in label_path.read_text().splitlines():
                fields = line.split()
                assert len(fields) == 5 and int(fields[0]) in range(len(synth.CLASSES))
                assert all(0.0 <= float(v) <= 1.0 for v in fields[1:])


def test_write_dataset_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    synth.write_dataset(tmp_path / "a", n_train=2, n_val=1, seed=9)
    synth.write_dataset(tmp_path / "b", n_train=2, n_val=1, seed=9)
    synth.write_dataset(tmp_path / "c", n_train=2, n_val=1, seed=10)
    fingerprint = synth.dataset_fingerprint(tmp_path / "a")
    assert fingerprint == synth.dataset_fingerprint(tmp_path / "b")
    assert fingerprint != synth.dataset_fingerprint(tmp_path / "c")


def test_demo_frames_and_truth_agree(tmp_path: Path) -> None:
    assert demo_model.main(["--demo-parts", str(tmp_path), "--count", "6"]) == 0
    with (tmp_path / "truth.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == [f"part_{i:04d}.png" for i in range(1, 7)]
    for row in rows:
        assert row["decision"] in {"accept", "reject"}
        assert (row["decision"] == "reject") == bool(row["classes"])
        assert set(filter(None, row["classes"].split(";"))) <= set(synth.CLASSES)
        frame = cv2.imread(str(tmp_path / row["file"]))
        assert frame is not None and frame.shape == (480, 640, 3)


def test_renderer_and_demo_frames_need_no_torch() -> None:
    code = (
        "import sys, training.synth, training.demo_model; "
        "assert not {'torch', 'ultralytics'} & set(sys.modules), 'training pulled in torch'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_shipped_demo_model_matches_its_card_and_runs() -> None:
    model_dir = REPO / "models" / "demo" / "1.0.0"
    if not (model_dir / "card.json").exists():
        pytest.fail(f"{model_dir}: the demo model is missing; build it with python -m training.demo_model")
    card, onnx_path = load_verified(model_dir)
    assert card.classes == synth.CLASSES
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.shape == [1, 3, card.input.height, card.input.width]
    blank = np.full((1, 3, card.input.height, card.input.width), 114 / 255, np.float32)
    (output,) = session.run(None, {model_input.name: blank})
    assert output.shape[:2] == (1, 4 + len(card.classes))
