"""The classify kind trained on crops at the appliance's scale and judged whole by its strongest location:
the crop is a window of exactly what edge's Preprocessor feeds, a defective part's window holds its defect,
the max pool decides by the most defective location, and the exported whole-part model passes parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge.errors import LinesideError
from edge.judge.detector.preprocess import Preprocessor
from edge.modelstore.card import load_verified
from training.judges.classify_data import (
    FrameTensor,
    PartDataset,
    crop_origin,
    input_spec,
    letterboxed,
    load_frame,
    read_boxes,
    read_parts,
)
from training.judges.classify_export import build_classifier, strongest_location
from training.judges.classify_train import (
    RUN_IDENTITY,
    ClassifySettings,
    load_checkpoint,
    load_classify_settings,
    train_classifier,
)
from training.synth import write_dataset

torch.set_num_threads(1)
IMGSZ = 128
CROP = 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "parts"
    write_dataset(root, n_train=16, n_val=8, seed=4)
    return root


def settings_for(data: Path, tmp: Path, **changes: object) -> ClassifySettings:
    values: dict[str, object] = dict(
        data=data, out=tmp / "out", work=tmp / "work", name="parts", version="0.1", imgsz=IMGSZ, epochs=1,
        batch=8, workers=0, device="cpu", crop=CROP, pool="max",
    )  # fmt: skip
    return ClassifySettings.model_validate(values | changes)


def test_the_max_pool_gives_the_part_the_defect_probability_of_its_worst_location():
    torch.manual_seed(0)
    cams = torch.randn(4, 2, 5, 7) * 3
    part = torch.softmax(strongest_location(cams), dim=1)[:, 1]
    per_location = torch.softmax(cams, dim=1)[:, 1].flatten(1)
    assert torch.allclose(part, per_location.max(dim=1).values)
    # with several defect classes, the location is the one where any defect class beats good the most
    three = torch.zeros(1, 3, 1, 2)
    three[0, :, 0, 0] = torch.tensor([0.0, 2.0, 0.0])  # evidence 2 (class 1)
    three[0, :, 0, 1] = torch.tensor([1.0, 0.0, 4.0])  # evidence 3 (class 2)
    assert torch.equal(strongest_location(three), torch.tensor([[1.0, 0.0, 4.0]]))


def test_a_max_pooled_classifier_runs_on_crops_and_on_the_whole_part():
    model = build_classifier(2, pool="max").eval()
    with torch.no_grad():
        assert model(torch.rand(3, 3, CROP, CROP)).shape == (3, 2)
        assert model(torch.rand(1, 3, IMGSZ * 2, IMGSZ)).shape == (1, 2)


def test_the_canvas_is_exactly_what_edges_preprocessor_feeds(synth):
    for item in read_parts(synth, "val").items[:4]:
        frame = load_frame(item.image)
        canvas, _ = letterboxed(frame, IMGSZ)
        served, _ = Preprocessor(input_spec(IMGSZ))(frame)
        assert np.array_equal(FrameTensor(IMGSZ)(canvas).numpy(), served)


def canvas_box(box: np.ndarray, placement: np.ndarray) -> np.ndarray:
    _, cx, cy, w, h = box
    scale, shift = placement
    return np.array(
        [(cx - w / 2) * scale[0] + shift[0], (cy - h / 2) * scale[1] + shift[1],
         (cx + w / 2) * scale[0] + shift[0], (cy + h / 2) * scale[1] + shift[1]]
    )  # fmt: skip


def test_a_defective_parts_window_holds_a_whole_defect_and_a_good_parts_lies_anywhere(synth):
    parts = read_parts(synth, "train")
    defective = [item for item in parts.items if item.label]
    assert defective, "the synthetic set must hold defective parts"
    rng = np.random.default_rng(0)
    for item in defective:
        _canvas, placement = letterboxed(load_frame(item.image), IMGSZ)
        boxes = read_boxes(item.boxes_file)
        corners = [canvas_box(box, placement) for box in boxes]
        for _ in range(20):
            x0, y0 = crop_origin(boxes, placement, IMGSZ, CROP, rng)
            assert 0 <= x0 <= IMGSZ - CROP and 0 <= y0 <= IMGSZ - CROP
            # some box lies wholly inside the window (the synthetic defects are smaller than the crop)
            assert any(
                x0 - 1 <= b[0] and b[2] <= x0 + CROP + 1 and y0 - 1 <= b[1] and b[3] <= y0 + CROP + 1
                for b in corners
            ), (item.image, (x0, y0), corners)
    whole = np.array([[IMGSZ, IMGSZ], [0.0, 0.0]])  # a part that fills the canvas
    origins = {crop_origin(np.zeros((0, 5)), whole, IMGSZ, CROP, rng) for _ in range(50)}
    assert len(origins) > 10 and all(0 <= x <= IMGSZ - CROP and 0 <= y <= IMGSZ - CROP for x, y in origins)


def test_a_good_parts_window_stays_on_the_part_not_on_the_letterbox_border():
    rng = np.random.default_rng(1)
    tall = np.array([[50.0, 128.0], [39.0, 0.0]])  # 50 px wide, centred: border at x < 39 and x >= 89
    wide = np.array([[128.0, 100.0], [0.0, 14.0]])
    for _ in range(50):
        x0, y0 = crop_origin(np.zeros((0, 5)), tall, IMGSZ, CROP, rng)
        assert x0 == 39 + (50 - CROP) // 2 and 0 <= y0 <= IMGSZ - CROP  # narrower than the window: centred
        x0, y0 = crop_origin(np.zeros((0, 5)), wide, IMGSZ, CROP, rng)
        assert 0 <= x0 <= IMGSZ - CROP and 14 <= y0 <= 14 + 100 - CROP


def test_a_defect_larger_than_the_window_is_centred_in_it():
    placement = np.array([[100.0, 100.0], [0.0, 0.0]])  # a 100 px part at the canvas's corner
    big = np.array([[0, 0.5, 0.5, 0.8, 0.8]])  # 80 px across, centred at (50, 50)
    for seed in range(5):
        x0, y0 = crop_origin(big, placement, 128, 32, np.random.default_rng(seed))
        assert (x0, y0) == (34, 34)


def test_crops_are_reproducible_per_seed_epoch_and_image(synth):
    parts = read_parts(synth, "train")
    data = PartDataset(parts, IMGSZ, seed=2, crop=CROP)
    first, label = data[1]
    again, _ = data[1]
    data.epoch = 1
    next_epoch, _ = data[1]
    assert first.shape == (3, CROP, CROP) and label == parts.items[1].label
    assert torch.equal(first, again) and not torch.equal(first, next_epoch)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pool": "avg"}, "training on crops needs pool: max"),
        ({"crop": 100}, "field 'crop'.*multiple of 32"),
        ({"crop": 256}, "crop: 256 is larger than imgsz 128"),
    ],
)
def test_crop_settings_that_cannot_work_are_refused_in_one_line(tmp_path, change, message):
    values = json.loads(settings_for(tmp_path, tmp_path).model_dump_json()) | change
    with pytest.raises(LinesideError, match=message) as caught:
        load_classify_settings(values)
    assert "\n" not in str(caught.value)


def test_runs_without_crops_keep_the_old_run_identity(tmp_path):
    plain = settings_for(tmp_path, tmp_path, crop=None, pool="avg")
    assert tuple(plain.identity()) == RUN_IDENTITY  # a checkpoint made before crops still resumes
    cropped = settings_for(tmp_path, tmp_path).identity()
    assert cropped == plain.identity() | {"crop": CROP, "pool": "max"}


def test_crops_of_a_defective_part_without_boxes_are_refused_before_training(tmp_path):
    import cv2

    root = tmp_path / "folders"
    for split in ("train", "val"):
        for name in ("good", "chip"):
            (root / split / name).mkdir(parents=True)
            cv2.imwrite(str(root / split / name / "0.png"), np.full((40, 60, 3), 128, np.uint8))
    with pytest.raises(LinesideError, match="cannot be cropped around its defect"):
        train_classifier(settings_for(root, tmp_path))
    assert not (tmp_path / "work").joinpath("classify-checkpoint.pt").exists()


def test_trained_on_crops_the_exported_model_judges_the_whole_part(synth, tmp_path):
    settings = settings_for(synth, tmp_path)
    train_classifier(settings)
    card, _ = load_verified(settings.out)
    assert (card.input.width, card.input.height) == (IMGSZ, IMGSZ)
    inputs = onnx.load(str(settings.out / "model.onnx")).graph.input
    assert [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] == [1, 3, IMGSZ, IMGSZ]
    assert float(str(card.metrics["parity_max_diff"])) <= 1e-4
    assert card.training.args["crop"] == CROP and card.training.args["pool"] == "max"
    state = load_checkpoint(settings.work)
    assert state is not None and state["identity"]["crop"] == CROP and state["identity"]["pool"] == "max"
    # edge's own chain judges the whole part with it, the card's threshold deciding
    from edge.judge.inspector import Inspector, load_model
    from edge.station.config import RecipeConfig

    inspector = Inspector.load(RecipeConfig(number=1, name="a", model=settings.out), load_model(settings.out))
    item = read_parts(synth, "val").items[0]
    (stage,) = inspector.inspect(load_frame(item.image)).stages
    assert stage.kind == "classify" and stage.score is not None and stage.threshold == card.thresholds.score
    assert stage.threshold is not None
    assert (stage.verdict.value == "REJECT") == (stage.score >= stage.threshold)
    assert stage.heatmap is not None and stage.heatmap.ndim == 2
