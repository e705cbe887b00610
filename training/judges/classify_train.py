"""Offline, resumable fine-tuning of the classify kind: EfficientNet-Lite0 + a linear head, part-level labels.

One checkpoint (model, optimiser, epoch, RNG state, run identity) is written atomically under the work dir
after every epoch; the same command run again continues after the last finished epoch (a run with other
data or settings is refused). Then the model is exported (classify_export.py) with its threshold.
"""

from __future__ import annotations

import io
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch.utils.data import DataLoader

from edge.atomic import atomic_write_bytes
from edge.errors import LinesideError
from edge.jsonmodel import validate_model
from edge.modelstore.card import TrainingInfo
from training.export import code_version
from training.judges.backbone import locate_weights
from training.judges.classify_data import (
    PartDataset,
    PartSet,
    parts_fingerprint,
    read_parts,
    require_boxes,
)
from training.judges.classify_export import (
    Classifier,
    build_classifier,
    export_classifier,
    require_good_and_defective,
)
from training.judges.judge_metrics import auroc
from training.train import go_offline

if TYPE_CHECKING:  # albumentations is imported only once training has gone offline (go_offline)
    from training.augment import AugmentConfig

CHECKPOINT = "classify-checkpoint.pt"
WEIGHT_DECAY = 1e-4
HEAD_LR_FACTOR = 10.0
FINAL_LR_FRACTION = 0.01  # the cosine schedule ends at lr x this
# Settings that change what is trained: a checkpoint made with other values is not resumed.
RUN_IDENTITY = ("imgsz", "batch", "lr", "seed")
# ... and these, only where they differ from their defaults (so older checkpoints still resume).
RUN_IDENTITY_OPTIONAL = {"crop": None, "pool": "avg"}


class ClassifySettings(BaseModel):
    """What to train for the classify kind. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Path = Field(description="Data folder: YOLO layout (images/, labels/) or <split>/<class>/ images.")
    out: Path = Field(description="Model folder to write (model.onnx + card.json).")
    work: Path = Field(description="Work folder for the checkpoint; the same one resumes a run.")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Model name (card).")
    version: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$", description="Model version (card).")
    imgsz: int = Field(256, ge=64, le=1024, description="Square letterbox input size, a multiple of 32.")
    epochs: int = Field(
        30, ge=1, le=1000, description="Epochs to train; more than a checkpoint's continues it."
    )
    batch: int = Field(16, ge=1, le=512, description="Images per optimiser step.")
    lr: float = Field(
        1e-4,
        gt=0.0,
        le=1.0,
        description="AdamW learning rate of the backbone (the head's is 10x), cosine-annealed.",
    )
    seed: int = Field(0, ge=0, description="Seed for the head, data order, dropout and augmentation.")
    device: str = Field(
        "auto", description="auto (CUDA when available, else cpu), cpu, cuda, or a CUDA index."
    )
    target_escape: float = Field(
        0.05, ge=0.0, lt=1.0, description="Defective-part escape rate the val threshold is chosen for."
    )
    augment: Path | None = Field(
        None, description="YAML file of factory augmentation options (training/augment.py); none: defaults."
    )
    workers: int | None = Field(None, ge=0, le=64, description="Dataloader workers; default min(8, cores).")
    tta: Literal["none", "hflip", "flips"] = Field(
        "none",
        description="Test-time flips built into the exported model: none, hflip (the part and its mirror "
        "image, 2x the run time) or flips (horizontal, vertical and both: 4x); the score is their mean.",
    )

    pool: Literal["avg", "max"] = Field(
        "avg",
        description="How the head's per-location logits make the part's: avg (global average) or max (the "
        "location of strongest defect evidence decides; needed to judge whole parts trained on crops).",
    )
    crop: int | None = Field(
        None,
        ge=64,
        le=1024,
        description="Train on crop x crop windows of the letterboxed part (around a defect on a defective "
        "part), a multiple of 32 and at most imgsz, with pool max; the model still judges the whole part.",
    )

    @field_validator("device", mode="before")
    @classmethod
    def _device_text(cls, value: object) -> object:
        value = str(value) if isinstance(value, int) else value
        if isinstance(value, str) and not re.fullmatch(r"auto|cpu|cuda|\d+", value):
            raise ValueError("expected auto, cpu, cuda or a CUDA device index")
        return value

    @field_validator("imgsz", "crop")
    @classmethod
    def _stride_multiple(cls, value: int | None) -> int | None:
        if value is not None and value % 32:
            raise ValueError("must be a multiple of 32 (the backbone's stride)")
        return value

    @model_validator(mode="after")
    def _crop_fits(self) -> ClassifySettings:
        if self.crop is not None and self.crop > self.imgsz:
            raise ValueError(f"crop: {self.crop} is larger than imgsz {self.imgsz}")
        if self.crop is not None and self.pool != "max":
            # averaged over the whole part, a defect learnt on a crop would be diluted (imgsz/crop)^2 times
            raise ValueError("crop: training on crops needs pool: max")
        return self

    def identity(self) -> dict[str, object]:
        identity = {key: getattr(self, key) for key in RUN_IDENTITY}
        for key, default in RUN_IDENTITY_OPTIONAL.items():
            if getattr(self, key) != default:
                identity[key] = getattr(self, key)
        return identity


def load_classify_settings(values: dict[str, Any], source: str = "command line") -> ClassifySettings:
    """Settings from a mapping (recipe keys and flags); a one-line LinesideError naming the field."""
    return validate_model(ClassifySettings, values, source)


def resolve_device(device: str) -> torch.device:
    """auto: the first CUDA device when torch sees one, else the CPU; cuda/index refused without CUDA."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LinesideError(f"device {device}: torch sees no CUDA device (use --device cpu)")
    index = 0 if device in {"auto", "cuda"} else int(device)
    if index >= torch.cuda.device_count():
        raise LinesideError(f"device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def augment_config(path: Path | None) -> AugmentConfig:
    """The augmentation options of a YAML file (validated); the defaults for None."""
    from training.augment import load_augment_config

    section: Any = None
    if path is not None:
        try:
            section = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise LinesideError(
                f"{path}: unreadable augmentation file ({str(exc).splitlines()[0]})"
            ) from None
        if section is not None and not isinstance(section, dict):
            raise LinesideError(f"{path}: expected a mapping of augmentation options")
    return load_augment_config(section, str(path or "augment"))


def class_weights(parts: PartSet) -> torch.Tensor:
    """Inverse class frequency (mean 1): good parts usually outnumber each defect class."""
    counts = parts.counts()
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise LinesideError(f"{parts.root}: the {parts.split} split has no images of class(es) {empty}")
    freq = torch.tensor([counts[name] for name in parts.classes], dtype=torch.float32)
    return freq.sum() / (len(freq) * freq)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(
    work: Path, model: Classifier, optimiser: torch.optim.Optimizer, epoch: int, identity: dict[str, object]
) -> Path:
    """Model, optimiser, finished epochs, RNG state and run identity, written atomically."""
    state = {
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "epoch": epoch,
        "rng": _rng_state(),
        "identity": identity,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(work / CHECKPOINT, buffer.getvalue())


def load_checkpoint(work: Path) -> dict[str, Any] | None:
    """The work dir's checkpoint, or None when there is none yet."""
    path = work / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise LinesideError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0]})") from None
    return state


def resume(
    state: dict[str, Any] | None,
    model: Classifier,
    optimiser: torch.optim.Optimizer,
    identity: dict[str, object],
    settings: ClassifySettings,
) -> int:
    """Restore a checkpoint of this very run; return the epochs it had finished (0 without one)."""
    if state is None:
        return 0
    where = settings.work / CHECKPOINT
    changed = sorted(
        k for k in identity.keys() | state["identity"].keys() if identity.get(k) != state["identity"].get(k)
    )
    if changed:
        raise LinesideError(f"{where}: made with other {', '.join(changed)}; use a new --work folder")
    epoch = int(state["epoch"])
    if epoch > settings.epochs:
        raise LinesideError(f"{where}: already {epoch} epochs, more than epochs={settings.epochs}")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return epoch


def epoch_lr(settings: ClassifySettings, epoch: int) -> float:
    """Cosine annealing from lr (epoch 0) towards lr x FINAL_LR_FRACTION (last epoch)."""
    progress = epoch / max(1, settings.epochs - 1)
    return settings.lr * (
        FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def _loader(
    dataset: PartDataset, settings: ClassifySettings, shuffle_seed: int | None, device: torch.device
) -> DataLoader[Any]:
    workers = settings.workers if settings.workers is not None else min(8, os.cpu_count() or 1)
    generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)
    return DataLoader(
        dataset, batch_size=settings.batch, shuffle=shuffle_seed is not None, generator=generator,
        num_workers=workers, pin_memory=device.type == "cuda",
    )  # fmt: skip


def train_one_epoch(
    model: Classifier,
    loader: DataLoader[Any],
    optimiser: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    device: torch.device,
) -> float:
    """One pass over the training data; the mean loss per image."""
    model.train()
    total, count = 0.0, 0
    for batch_images, batch_labels in loader:
        images = batch_images.to(device, non_blocking=True)
        labels = batch_labels.to(device, non_blocking=True)
        loss = loss_fn(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(labels)
        count += len(labels)
    return total / max(1, count)


def defect_scores(model: Classifier, loader: DataLoader[Any], device: torch.device) -> np.ndarray:
    """1 - P(good) of every image of an unshuffled loader, in order (the torch model, eval mode)."""
    model.eval()
    scores: list[np.ndarray] = []
    with torch.no_grad():
        for images, _ in loader:
            probabilities = torch.softmax(model(images.to(device)), dim=1)
            scores.append((1.0 - probabilities[:, 0]).cpu().numpy())
    return np.concatenate(scores)


def _progress(message: str) -> None:
    print(f"lineside train: classify {message}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def fit(
    model: Classifier,
    data: tuple[PartSet, PartSet],
    settings: ClassifySettings,
    augmentation: AugmentConfig,
    identity: dict[str, object],
) -> None:
    """Train from the checkpoint's epoch (if any) to settings.epochs on (train, val), checkpointing each."""
    from training.augment import build_pipeline

    train, val = data
    device = resolve_device(settings.device)
    model.to(device)
    # The new head learns HEAD_LR_FACTOR times faster than the pretrained backbone: at 5e-4 for the whole
    # network the backbone's weights were wrecked within a few steps on magnetic tile (loss 0.63 -> 3.45,
    # then stuck at ln 2); at 1e-4 the same 64 parts were fitted in 12 steps.
    groups = [
        {"params": model.backbone.parameters(), "lr_scale": 1.0},
        {"params": [*model.head.parameters()], "lr_scale": HEAD_LR_FACTOR},
    ]
    optimiser = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=WEIGHT_DECAY)
    start = resume(load_checkpoint(settings.work), model, optimiser, identity, settings)
    if start:
        _progress(f"resuming after epoch {start}/{settings.epochs} from {settings.work / CHECKPOINT}")
    pipeline = build_pipeline(augmentation, seed=settings.seed)
    train_data = PartDataset(train, settings.imgsz, pipeline, seed=settings.seed, crop=settings.crop)
    val_loader = _loader(PartDataset(val, settings.imgsz), settings, None, device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(train).to(device))
    truth = [item.label != 0 for item in val.items]
    for epoch in range(start, settings.epochs):
        began = time.monotonic()
        for group in optimiser.param_groups:
            group["lr"] = epoch_lr(settings, epoch) * float(group.get("lr_scale", 1.0))
        train_data.epoch = epoch
        shuffle_seed = int(np.random.SeedSequence([settings.seed, epoch]).generate_state(1)[0])
        loss = train_one_epoch(
            model, _loader(train_data, settings, shuffle_seed, device), optimiser, loss_fn, device
        )
        area = auroc(defect_scores(model, val_loader, device), truth)
        save_checkpoint(settings.work, model, optimiser, epoch + 1, identity)
        took = time.monotonic() - began
        shown = "n/a" if area is None else f"{area:.3f}"
        _progress(
            f"epoch {epoch + 1}/{settings.epochs} loss {loss:.4f} val AUROC {shown} ({took:.1f} s,"
            f" {took / len(train.items):.3f} s/image, eta {_duration(took * (settings.epochs - epoch - 1))})"
        )


def train_classifier(settings: ClassifySettings) -> Path:
    """Train (or resume, or skip when finished) and export the classifier; return the model folder."""
    go_offline()
    settings = settings.model_copy(
        update={
            "data": settings.data.resolve(),
            "out": settings.out.resolve(),
            "work": settings.work.resolve(),
        }
    )
    settings.work.mkdir(parents=True, exist_ok=True)
    train, val = read_parts(settings.data, "train"), read_parts(settings.data, "val")
    require_good_and_defective(val)  # before hours of training, not after
    if settings.crop is not None:
        require_boxes(train)
    fingerprint = parts_fingerprint([train, val])
    augmentation = augment_config(settings.augment)
    identity = {**settings.identity(), "classes": list(train.classes), "data_fingerprint": fingerprint,
                "augment": augmentation.model_dump(mode="json")}  # fmt: skip
    dataset = f"{settings.data} ({train.layout} layout): {train.describe()}; {val.describe()}"
    _progress(dataset)
    weights = locate_weights()
    torch.manual_seed(settings.seed)
    model = build_classifier(len(train.classes), weights, pool=settings.pool)
    fit(model, (train, val), settings, augmentation, identity)
    _progress(f"exporting to {settings.out}")
    card = export_classifier(
        model,
        settings.out,
        name=settings.name,
        version=settings.version,
        imgsz=settings.imgsz,
        classes=train.classes,
        val=val,
        target_escape=settings.target_escape,
        weights=weights,
        tta=settings.tta,
        training=TrainingInfo(
            data_fingerprint=fingerprint,
            code_version=code_version(),
            args=settings.model_dump(mode="json"),
            dataset=dataset,
        ),
    )
    _progress(f"threshold {card.thresholds.score} on val: {card.metrics}")
    return settings.out
