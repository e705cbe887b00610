"""Augmentation made for factory images: lighting, exposure, focus, sensor noise and small fixture shifts.

No hue or colour changes unless a recipe allows them (a colour shift can look like a defect, or hide one).
Box-safe: boxes follow the geometry and those mostly pushed out of the frame are dropped (min_visibility).
Training uses it by replacing ultralytics' built-in Albumentations step (see install_into_trainer).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import albumentations as A  # noqa: N812 (the library's own convention)
import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from training.datasets.layout import label_path_for, list_images, read_label_file, read_layout

PAD_VALUE = 114  # what a shift uncovers: ultralytics' letterbox grey, never a mirrored (unlabelled) defect
LABEL_FIELDS = ["class_labels", "idx"]  # the names ultralytics' Albumentations step passes


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    p: float = Field(0.5, ge=0.0, le=1.0, description="Probability the step runs on an image.")


class LightingConfig(_Step):
    """Brightness and contrast: lamp ageing, reflections, part finish."""

    brightness: float = Field(
        0.2, ge=0.0, le=0.9, description="Largest brightness shift, fraction of full scale."
    )
    contrast: float = Field(0.2, ge=0.0, le=0.9, description="Largest contrast change, fraction.")


class ExposureConfig(_Step):
    """Exposure as a gamma curve: a camera's auto-exposure drifting."""

    p: float = Field(0.3, ge=0.0, le=1.0, description="Probability the step runs on an image.")
    gamma_min: int = Field(80, ge=20, le=100, description="Lowest gamma x100 (below 100 brightens).")
    gamma_max: int = Field(120, ge=100, le=500, description="Highest gamma x100 (above 100 darkens).")


class BlurConfig(_Step):
    """One of box blur, defocus or motion blur: focus drift and a moving conveyor."""

    p: float = Field(0.2, ge=0.0, le=1.0, description="Probability the step runs on an image.")
    max_kernel: int = Field(5, ge=3, le=31, description="Largest blur kernel in pixels (odd).")
    max_defocus_radius: int = Field(3, ge=1, le=15, description="Largest defocus radius in pixels.")


class NoiseConfig(_Step):
    """Sensor noise: additive (read/ISO noise) or multiplicative (shot-like), the same on all channels."""

    p: float = Field(0.2, ge=0.0, le=1.0, description="Probability the step runs on an image.")
    std: float = Field(
        0.04, ge=0.0, le=0.3, description="Largest Gaussian noise std, fraction of full scale."
    )
    multiplicative: float = Field(
        0.05, ge=0.0, le=0.5, description="Largest per-pixel gain change, fraction."
    )


class GeometryConfig(_Step):
    """Small rotations, shifts and scale changes: a part placed by a fixture, not thrown on a table."""

    rotate_deg: float = Field(3.0, ge=0.0, le=30.0, description="Largest rotation, degrees either way.")
    shift: float = Field(0.03, ge=0.0, le=0.2, description="Largest shift, fraction of the image side.")
    scale: float = Field(0.05, ge=0.0, le=0.3, description="Largest scale change, fraction.")


class HueConfig(_Step):
    """Colour changes; used only when `allow_hue` is true (colour parts under changing light)."""

    p: float = Field(0.3, ge=0.0, le=1.0, description="Probability the step runs on an image.")
    hue_shift: int = Field(10, ge=0, le=90, description="Largest hue shift (OpenCV units, 180 = full turn).")
    saturation_shift: int = Field(20, ge=0, le=100, description="Largest saturation shift (0..255 scale).")


class AugmentConfig(BaseModel):
    """The factory augmentation of one recipe; every step has a strength and a probability."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lighting: LightingConfig = Field(default_factory=LightingConfig, description="Brightness/contrast.")
    exposure: ExposureConfig = Field(default_factory=ExposureConfig, description="Gamma (exposure) shifts.")
    blur: BlurConfig = Field(default_factory=BlurConfig, description="Blur, defocus, motion blur.")
    noise: NoiseConfig = Field(default_factory=NoiseConfig, description="Sensor noise.")
    geometry: GeometryConfig = Field(default_factory=GeometryConfig, description="Small affine moves.")
    allow_hue: bool = Field(False, description="Allow hue/saturation changes (off: colour is never altered).")
    hue: HueConfig = Field(default_factory=HueConfig, description="Hue/saturation, only with allow_hue.")
    min_visibility: float = Field(
        0.3, ge=0.0, le=1.0, description="Drop a box when less than this fraction of it stays in the frame."
    )


def load_augment_config(
    section: Mapping[str, Any] | AugmentConfig | None, source: str = "augment"
) -> AugmentConfig:
    """From a recipe's YAML section (a dict); None gives the defaults. One-line error naming `source`."""
    if isinstance(section, AugmentConfig):
        return section
    try:
        return AugmentConfig.model_validate(section or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LinesideError(f"{source}.{where}: {first['msg']}") from None


def build_transforms(config: AugmentConfig) -> list[A.BasicTransform]:
    """The albumentations steps, in the order a camera would apply them (optics before the sensor)."""
    c = config
    kernel = c.blur.max_kernel if c.blur.max_kernel % 2 else c.blur.max_kernel + 1
    steps: list[A.BasicTransform] = [
        A.Affine(
            rotate=(-c.geometry.rotate_deg, c.geometry.rotate_deg),
            translate_percent={
                "x": (-c.geometry.shift, c.geometry.shift),
                "y": (-c.geometry.shift, c.geometry.shift),
            },
            scale=(1 - c.geometry.scale, 1 + c.geometry.scale),
            rotate_method="ellipse",  # boxes grow less than with 'largest_box' under small rotations
            border_mode=cv2.BORDER_CONSTANT,
            fill=PAD_VALUE,
            p=c.geometry.p,
        ),
        A.OneOf(
            [
                A.Blur(blur_limit=(3, kernel)),
                A.Defocus(radius=(1, c.blur.max_defocus_radius), alias_blur=(0.1, 0.3)),
                A.MotionBlur(blur_limit=(3, kernel)),
            ],
            p=c.blur.p,
        ),
        A.RandomBrightnessContrast(
            brightness_limit=c.lighting.brightness, contrast_limit=c.lighting.contrast, p=c.lighting.p
        ),
        A.RandomGamma(gamma_limit=(c.exposure.gamma_min, c.exposure.gamma_max), p=c.exposure.p),
        A.OneOf(
            [
                # per_channel=False: a mono camera's noise is grey, and colour noise would shift hue
                A.GaussNoise(std_range=(0.0, c.noise.std), per_channel=False),
                A.MultiplicativeNoise(
                    multiplier=(1 - c.noise.multiplicative, 1 + c.noise.multiplicative),
                    per_channel=False,
                    elementwise=True,
                ),
            ],
            p=c.noise.p,
        ),
    ]
    if c.allow_hue:
        steps.append(
            A.HueSaturationValue(
                hue_shift_limit=c.hue.hue_shift,
                sat_shift_limit=c.hue.saturation_shift,
                val_shift_limit=0,
                p=c.hue.p,
            )
        )
    return steps


def build_pipeline(config: AugmentConfig, seed: int | None = None) -> A.Compose:
    """A box-safe Compose: YOLO boxes in, YOLO boxes out, boxes mostly outside the frame dropped.

    With a seed, every step gets a generator of its own (see _seed_apart): reproducible, and independent."""
    pipeline = A.Compose(
        build_transforms(config),
        bbox_params=A.BboxParams(
            format="yolo", label_fields=LABEL_FIELDS, min_visibility=config.min_visibility
        ),
        seed=seed,
    )
    if seed is not None:
        _seed_apart(pipeline, np.random.SeedSequence(seed))
    return pipeline


def _seed_apart(compose: A.BaseCompose, sequence: np.random.SeedSequence) -> None:
    """Albumentations 2 gives every step of a seeded Compose the Compose's own seed, so all steps draw the
    same random numbers: a step with p=0.3 then runs only when every step with p >= 0.3 runs too, and their
    strengths move together. Each step (and each step inside a OneOf) gets a seed of its own instead, spawned
    from the pipeline's seed."""
    transforms = list(compose.transforms)
    for transform, child in zip(transforms, sequence.spawn(len(transforms)), strict=True):
        transform.set_random_seed(int(child.generate_state(1)[0]))
        if isinstance(transform, A.BaseCompose):  # which resets its own steps to that one seed: apart again
            _seed_apart(transform, child)


def augment(pipeline: A.Compose, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply to an image and its YOLO boxes, an (N, 5) array of class cx cy w h; returns both augmented."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    # Clip to the frame first: albumentations refuses a box a rounding error outside [0, 1].
    xyxy = np.column_stack(
        [boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2] - boxes[:, 4] / 2, boxes[:, 1] + boxes[:, 3] / 2,
         boxes[:, 2] + boxes[:, 4] / 2]
    ).clip(0.0, 1.0)  # fmt: skip
    yolo = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                            xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]])  # fmt: skip
    keep = (yolo[:, 2] > 0) & (yolo[:, 3] > 0)
    result = pipeline(
        image=image, bboxes=yolo[keep], class_labels=boxes[keep, 0], idx=np.arange(int(keep.sum()))
    )
    out_boxes = np.asarray(result["bboxes"], np.float64).reshape(-1, 4)
    classes = np.asarray(result["class_labels"], np.float64).reshape(-1, 1)
    return result["image"], np.hstack([classes, out_boxes])


def _read_boxes(label: Path, nc: int) -> np.ndarray:
    rows = []
    if label.is_file():
        for number, item in read_label_file(label, nc):
            if isinstance(item, ValueError):
                raise LinesideError(f"{label}:{number}: {item}")
            rows.append((item.cls, item.cx, item.cy, item.w, item.h))
    return np.asarray(rows, np.float64).reshape(-1, 5)


def _draw(image: np.ndarray, boxes: np.ndarray, names: tuple[str, ...], cell: int) -> np.ndarray:
    """The image letterboxed into a cell x cell tile, its boxes drawn (OpenCV's Hershey font: no download)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    scale = cell / max(h, w)
    resized = cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    tile = np.full((cell, cell, 3), PAD_VALUE, np.uint8)
    tile[: resized.shape[0], : resized.shape[1]] = resized
    for cls, cx, cy, bw, bh in boxes:
        x0, y0 = int((cx - bw / 2) * w * scale), int((cy - bh / 2) * h * scale)
        x1, y1 = int((cx + bw / 2) * w * scale), int((cy + bh / 2) * h * scale)
        cv2.rectangle(tile, (x0, y0), (x1, y1), (0, 0, 255), 1)
        name = names[int(cls)] if int(cls) < len(names) else str(int(cls))
        cv2.putText(tile, name, (x0, max(10, y0 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1)
    return tile


def preview_grid(
    data_dir: Path,
    config: AugmentConfig | Mapping[str, Any] | None,
    out_png: Path,
    *,
    n: int = 16,
    seed: int = 0,
    split: str = "train",
    cell: int = 256,
) -> Path:
    """A PNG grid of `n` augmented samples of the dataset's `split`, boxes drawn; returns `out_png`.

    Defective images are preferred (their boxes show whether augmentation keeps them right)."""
    layout = read_layout(data_dir)
    if split not in layout.splits:
        raise LinesideError(f"{data_dir / 'data.yaml'}: no '{split}' split")
    images_dir, labels_dir = layout.splits[split], layout.labels_dir(split)
    images = list_images(images_dir)
    if not images:
        raise LinesideError(f"{images_dir}: no images to preview")
    rng = random.Random(seed)
    rng.shuffle(images)
    labelled = [i for i in images if label_path_for(i, images_dir, labels_dir).is_file()]
    defective = [i for i in labelled if label_path_for(i, images_dir, labels_dir).read_text().strip()]
    chosen = (defective + [i for i in images if i not in set(defective)])[:n]
    pipeline = build_pipeline(load_augment_config(config), seed=seed)
    tiles = []
    for path in chosen:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise LinesideError(f"{path}: image does not decode")
        boxes = _read_boxes(label_path_for(path, images_dir, labels_dir), len(layout.names))
        tiles.append(_draw(*augment(pipeline, image, boxes), layout.names, cell))
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    grid = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = tile
    ok, png = cv2.imencode(".png", grid)
    if not ok:
        raise LinesideError(f"{out_png}: could not encode the preview")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_png, png.tobytes())
    return out_png


# --- ultralytics integration -------------------------------------------------------------------------
# Hook: ultralytics 8.4 builds its train transforms in YOLODataset.build_transforms -> v8_transforms, whose
# Compose holds one `ultralytics.data.augment.Albumentations` step (after mosaic/RandomPerspective, before
# RandomHSV and flips). Its `augmentations=` train argument can swap the transform list but always wraps
# it in a Compose without min_visibility, so instead we wrap the trainer's `build_dataset`: each train
# dataset gets our Compose put into that step, and its build_transforms is wrapped too, because
# close_mosaic rebuilds the transforms. This runs before the dataloader forks its workers.


def _factory_step(config: AugmentConfig) -> Any:
    """An ultralytics Albumentations step whose transform is our box-safe Compose."""
    from ultralytics.data.augment import Albumentations

    transforms = build_transforms(config)
    step = Albumentations(p=1.0, transforms=transforms)
    if step.contains_spatial:
        step.transform = A.Compose(
            transforms,
            bbox_params=A.BboxParams(
                format="yolo", label_fields=LABEL_FIELDS, min_visibility=config.min_visibility
            ),
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False, label_fields=["pidx"]),
        )
    vars(step)["lineside_factory"] = True  # marks the step as ours (tests, and not replacing twice)
    return step


def _replace_steps(transforms: Any, config: AugmentConfig) -> int:
    """Swap each ultralytics Albumentations step of a transforms Compose for ours; returns how many."""
    from ultralytics.data.augment import Albumentations

    steps = getattr(transforms, "transforms", None) or []
    replaced = 0
    for i, step in enumerate(steps):
        if isinstance(step, Albumentations) and not getattr(step, "lineside_factory", False):
            steps[i] = _factory_step(config)
            replaced += 1
    return replaced


def install_into_dataset(dataset: Any, config: AugmentConfig) -> int:
    """Put the factory step into an ultralytics dataset's transforms (now and on every rebuild)."""
    if not isinstance(dataset.build_transforms, _RebuildWithFactory):
        dataset.build_transforms = _RebuildWithFactory(dataset.build_transforms, config)
    return _replace_steps(dataset.transforms, config)


class _RebuildWithFactory:
    """dataset.build_transforms that puts our step back in (close_mosaic rebuilds the transforms)."""

    def __init__(self, original: Callable[..., Any], config: AugmentConfig) -> None:
        self.original, self.config = original, config

    def __call__(self, hyp: Any = None) -> Any:
        transforms = self.original(hyp)
        _replace_steps(transforms, self.config)
        return transforms


class _BuildDatasetWithFactory:
    def __init__(self, original: Callable[..., Any], config: AugmentConfig) -> None:
        self.original, self.config = original, config

    def __call__(self, img_path: str, mode: str = "train", batch: int | None = None) -> Any:
        dataset = self.original(img_path, mode, batch)
        if mode == "train":
            install_into_dataset(dataset, self.config)
        return dataset


def install_into_trainer(trainer: Any, config: AugmentConfig | Mapping[str, Any] | None) -> None:
    """Make an ultralytics trainer use the factory augmentation; call before its datasets are built
    (e.g. from an `on_pretrain_routine_start` callback, see `callback`). Without allow_hue it also
    zeroes ultralytics' own hue/saturation jitter (RandomHSV), so no step changes colour."""
    cfg = load_augment_config(config)
    if not isinstance(trainer.build_dataset, _BuildDatasetWithFactory):
        trainer.build_dataset = _BuildDatasetWithFactory(trainer.build_dataset, cfg)
    if not cfg.allow_hue:
        trainer.args.hsv_h = 0.0
        trainer.args.hsv_s = 0.0


def callback(config: AugmentConfig | Mapping[str, Any] | None) -> Callable[[Any], None]:
    """For `YOLO(...).add_callback("on_pretrain_routine_start", callback(config))` before `.train()`."""
    cfg = load_augment_config(config)

    def on_pretrain_routine_start(trainer: Any) -> None:
        install_into_trainer(trainer, cfg)

    return on_pretrain_routine_start
