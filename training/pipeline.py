"""`lineside train` as one function: check and fingerprint the data, (tile,) train, export, (quantise).

Every step is resumable: re-running with the same arguments continues an interrupted training and
skips what is finished, so a notebook or a shell loop can simply call it again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from edge.errors import LinesideError
from edge.modelstore.card import ModelCard, load_verified
from training.export import OPSET, export_model
from training.fingerprint import DatasetSummary, read_data_yaml, scan_dataset, split_images
from training.tiling import tile_dataset
from training.train import TrainSettings, epochs_done, resolve_device, train_model


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run produced: the fp32 model folder and card, and the INT8 one if asked for."""

    model_dir: Path
    card: ModelCard
    weights: Path
    int8_dir: Path | None = None
    int8_card: ModelCard | None = None


def training_args(
    settings: TrainSettings, summary: DatasetSummary, recipe: Path | None, device: str, epochs: int
) -> dict[str, object]:
    """The effective arguments recorded in the card (recipe values with command-line overrides applied)."""
    args: dict[str, object] = settings.model_dump(mode="json")
    args |= {"data": str(summary.source), "recipe": str(recipe) if recipe else None, "device": device}
    args |= {"epochs_trained": epochs, "opset": OPSET}
    if settings.tile:
        args["tiling"] = {"size": settings.tile, "overlap": settings.tile_overlap}  # read by edge's Tiler
    return args


def quantize_int8(model_dir: Path, card: ModelCard, calibration: list[Path]) -> tuple[Path, ModelCard]:
    """INT8 copy in `<folder>-int8` beside the fp32 folder (training/quantize.py); reused when current."""
    from training.quantize import quantize_model  # onnxruntime.quantization: only when asked for

    int8_dir = model_dir.with_name(f"{model_dir.name}-int8")
    try:
        existing, _ = load_verified(int8_dir)
        made_from = existing.training.args.get("int8")
        same_source = isinstance(made_from, dict) and made_from.get("from") == f"{card.name} {card.version}"
        if same_source and existing.training.data_fingerprint == card.training.data_fingerprint:
            print(f"lineside train: {int8_dir} already holds the INT8 model", file=sys.stderr)
            return int8_dir, existing
    except LinesideError:
        pass
    print(f"lineside train: quantising to INT8 in {int8_dir}", file=sys.stderr)
    return int8_dir, quantize_model(model_dir, calibration, int8_dir)


def train_and_export(
    data: Path,
    settings: TrainSettings,
    out_dir: Path,
    work: Path,
    *,
    version: str,
    recipe: Path | None = None,
    int8: bool = False,
) -> TrainOutcome:
    """Train on the YOLO-layout folder `data` and write `out_dir` (model.onnx + card.json)."""
    work = work.resolve()
    summary = scan_dataset(data, work)
    print(
        f"lineside train: dataset {summary.describe()}, fingerprint {summary.fingerprint[:12]}",
        file=sys.stderr,
    )
    data_yaml = summary.data_yaml
    if settings.tile:
        data_yaml = tile_dataset(
            summary,
            work,
            size=settings.tile,
            overlap=settings.tile_overlap,
            min_visibility=settings.tile_min_visibility,
        )
    weights = train_model(data_yaml, settings, work, fingerprint=summary.fingerprint)
    device = resolve_device(settings.device)
    args = training_args(settings, summary, recipe, device, epochs_done(weights.parent.parent))
    card = export_model(
        weights,
        out_dir,
        name=settings.name,
        version=version,
        imgsz=settings.imgsz,
        data_yaml=data_yaml,
        classes=summary.classes,
        fingerprint=summary.fingerprint,
        train_args=args,
        work=work,
        dataset_text=summary.describe(),
    )
    if not int8:
        return TrainOutcome(out_dir, card, weights)
    raw, root, _ = read_data_yaml(data_yaml)
    int8_dir, int8_card = quantize_int8(out_dir, card, split_images(data_yaml, root, raw["train"]))
    return TrainOutcome(out_dir, card, weights, int8_dir, int8_card)
