"""Factory augmentation: boxes stay valid, colour is untouched by default, preview grid, ultralytics hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.errors import LinesideError
from tests.test_dataset_check import make_dataset
from training.augment import AugmentConfig, augment, build_pipeline, load_augment_config, preview_grid

ALL_ON = {"lighting": {"p": 1.0}, "exposure": {"p": 1.0}, "blur": {"p": 1.0}, "noise": {"p": 1.0}}
REPO = Path(__file__).resolve().parents[1]


def test_boxes_stay_valid_and_inside_the_frame_under_strong_geometry() -> None:
    config = load_augment_config({"geometry": {"p": 1.0, "rotate_deg": 15, "shift": 0.2, "scale": 0.2}})
    image = np.full((96, 128, 3), 100, np.uint8)
    boxes = np.array([[0, 0.5, 0.5, 0.2, 0.2], [1, 0.03, 0.05, 0.06, 0.1], [1, 0.9, 0.9, 0.2, 0.2]])
    kept_counts = set()
    for seed in range(40):
        out_image, out = augment(build_pipeline(config, seed=seed), image, boxes)
        assert out_image.shape == image.shape
        left, right = out[:, 1] - out[:, 3] / 2, out[:, 1] + out[:, 3] / 2
        top, bottom = out[:, 2] - out[:, 4] / 2, out[:, 2] + out[:, 4] / 2
        assert np.all(left >= -1e-6) and np.all(right <= 1 + 1e-6), out
        assert np.all(top >= -1e-6) and np.all(bottom <= 1 + 1e-6), out
        assert np.all(out[:, 3] > 0) and np.all(out[:, 4] > 0)
        assert set(out[:, 0]) <= {0.0, 1.0}
        kept_counts.add(len(out))
    assert 3 in kept_counts and min(kept_counts) < 3  # edge boxes pushed mostly out are dropped


PATCHES = [(40, 40, 150), (40, 130, 40), (150, 60, 30), (30, 100, 160)]  # BGR; bright enough to have a hue


def _colour_patches() -> np.ndarray:
    image = np.zeros((120, 160, 3), np.uint8)
    for i, colour in enumerate(PATCHES):
        image[:, i * 40 : (i + 1) * 40] = colour
    return image


def _patch_hues(image: np.ndarray) -> np.ndarray:
    """Median hue (OpenCV units, 0..180) of the middle of each patch, away from moved edges."""
    hue = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 0].astype(float)
    return np.array([np.median(hue[20:100, i * 40 + 12 : i * 40 + 28]) for i in range(len(PATCHES))])


def _hue_shift(before: np.ndarray, after: np.ndarray) -> float:
    diff = np.abs(_patch_hues(before) - _patch_hues(after))
    return float(np.minimum(diff, 180 - diff).max())  # hue is circular


def test_default_pipeline_keeps_hue_and_keeps_grey_images_grey() -> None:
    config = load_augment_config(ALL_ON)
    colour, grey = _colour_patches(), np.full((120, 160, 3), 128, np.uint8)
    for seed in range(10):
        pipeline = build_pipeline(config, seed=seed)
        out, _ = augment(pipeline, colour, np.zeros((0, 5)))
        assert _hue_shift(colour, out) <= 4  # gamma bends hue a little; 4 units = 8 degrees
        out_grey, _ = augment(pipeline, grey, np.zeros((0, 5)))
        spread = out_grey.astype(int).max(axis=2) - out_grey.astype(int).min(axis=2)
        assert spread.max() <= 1  # noise is the same on all channels: no colour speckle


def test_allow_hue_does_change_hue() -> None:
    config = load_augment_config({"allow_hue": True, "hue": {"p": 1.0, "hue_shift": 40}})
    colour = _colour_patches()
    shifts = [
        _hue_shift(colour, augment(build_pipeline(config, seed=s), colour, np.zeros((0, 5)))[0])
        for s in range(6)
    ]
    assert max(shifts) > 10


def test_config_refuses_unknown_keys_and_bad_strengths_in_one_line() -> None:
    with pytest.raises(LinesideError, match=r"augment\.lighting\.brigthness: Extra inputs"):
        load_augment_config({"lighting": {"brigthness": 0.3}})
    with pytest.raises(LinesideError, match=r"recipe\.augment\.noise\.p: Input should be less than"):
        load_augment_config({"noise": {"p": 2}}, source="recipe.augment")
    defaults = load_augment_config(None)
    assert defaults == AugmentConfig() and not defaults.allow_hue and defaults.geometry.rotate_deg <= 5


def test_preview_grid_writes_a_decodable_png_of_n_tiles(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d")
    out = preview_grid(data, ALL_ON, tmp_path / "preview" / "grid.png", n=4, seed=1)
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (512, 512, 3)
    again = cv2.imread(str(preview_grid(data, ALL_ON, tmp_path / "again.png", n=4, seed=1)))
    assert again is not None and np.array_equal(again, image)  # the seed decides


_HOOK_SCRIPT = """
import json, sys
from copy import copy
from pathlib import Path
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import callbacks as ucb
from training.augment import callback

data, work, install = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
cbs = ucb.get_default_callbacks()
if install:
    config = {"noise": {"p": 1.0, "std": 0.3}, "geometry": {"p": 1.0, "rotate_deg": 10, "shift": 0.1}}
    cbs["on_pretrain_routine_start"].append(callback(config))
trainer = DetectionTrainer(overrides=dict(
    model="yolov8n.yaml", data=str(data / "data.yaml"), imgsz=64, batch=4, workers=0, device="cpu",
    mosaic=0.0, hsv_v=0.0, degrees=0.0, translate=0.0, scale=0.0, fliplr=0.0, plots=False, project=str(work),
    name="t", exist_ok=True, pretrained=False, amp=False, close_mosaic=0), _callbacks=cbs)
trainer.model = trainer.get_model(cfg="yolov8n.yaml", verbose=False)
loader = trainer.get_dataloader(trainer.data["train"], batch_size=4, mode="train", rank=-1)
batch = next(iter(loader))
ours = lambda: [vars(s).get("lineside_factory", False) for s in loader.dataset.transforms.transforms]
steps = ours()
loader.dataset.close_mosaic(hyp=copy(trainer.args))
img = batch["img"][:, :, 16:48, 16:48].float()
std = float(img.flatten(1).std(dim=1).max())
print(json.dumps({"ours": steps, "ours_after_close_mosaic": ours(), "std": std,
                  "hsv": [trainer.args.hsv_h, trainer.args.hsv_s], "boxes": batch["bboxes"].tolist()}))
"""


def _pull_batch(tmp_path: Path, data: Path, install: bool) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "hook.py"
    script.write_text(textwrap.dedent(_HOOK_SCRIPT))
    env = {
        **os.environ,
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(tmp_path / "ucfg"),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, str(script), str(data), str(tmp_path / "runs"), "1" if install else "0"],
        capture_output=True, text=True, timeout=240, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_ultralytics_training_dataset_uses_the_factory_step_and_keeps_it_after_close_mosaic(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ultralytics", reason="needs the train extra")
    data = make_dataset(tmp_path / "d", per_split=4)
    for label in (data / "labels" / "train").glob("*.txt"):
        label.write_text("0 0.5 0.5 0.25 0.25\n")  # every image has a box, so the batch has 4
    data_yaml = data / "data.yaml"  # ultralytics reads `path: .` against its working folder
    data_yaml.write_text(data_yaml.read_text().replace("path: .", f"path: {data}"))
    plain = _pull_batch(tmp_path / "plain", data, install=False)
    factory = _pull_batch(tmp_path / "factory", data, install=True)
    assert not any(plain["ours"]) and plain["std"] < 1.0  # flat images stay flat without our step
    assert factory["ours"].count(True) == 1 and factory["ours_after_close_mosaic"].count(True) == 1
    assert factory["std"] > 1.0  # our noise reached the batch
    assert factory["hsv"] == [0.0, 0.0]  # ultralytics' own hue/saturation jitter is off
    boxes = np.array(factory["boxes"])
    assert np.all((boxes >= 0) & (boxes <= 1)) and not np.allclose(boxes, plain["boxes"])


def _gates(pipeline: Any) -> tuple[bool, ...]:
    """Whether each step of a fresh pipeline runs on its first image at p = 0.5: albumentations gates a step
    (a OneOf included) with `py_random.random() < p`, from that step's own generator."""
    return tuple(step.py_random.random() < 0.5 for step in pipeline.transforms)


def test_a_seeded_pipeline_gives_each_step_its_own_random_numbers_and_repeats_itself() -> None:
    # Albumentations 2 seeds every step of a Compose alike: every step drew the same numbers, so on a
    # pipeline's first image steps of equal p all ran or none did, whatever the seed.
    config = load_augment_config(ALL_ON)
    gates = {_gates(build_pipeline(config, seed=seed)) for seed in range(20)}
    steps = len(build_pipeline(config, seed=0).transforms)
    assert gates - {(True,) * steps, (False,) * steps}, gates  # some steps run where others do not
    image = np.random.default_rng(0).integers(40, 200, (64, 64, 3), dtype=np.uint8)
    none = np.zeros((0, 5))
    first = [augment(build_pipeline(config, seed=7), image, none)[0] for _ in range(2)]
    assert np.array_equal(first[0], first[1])  # the same seed, the same augmentation
    again, other = build_pipeline(config, seed=7), build_pipeline(config, seed=8)
    runs = [augment(again, image, none)[0] for _ in range(5)]
    others = [augment(other, image, none)[0] for _ in range(5)]
    assert any(not np.array_equal(a, b) for a, b in zip(runs, others, strict=True))  # another seed
