"""The model variants `lineside bench --suite` measures: a model at another input size, and INT8 copies.

Another input size needs the network again: its own weights (`weights`, a .pt) exported at that size,
or, when they are not at hand, a timing twin: the same YOLOv8n architecture and class count with
untrained weights, which costs what the model costs but judges nothing (its verdicts are not compared).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

from edge.errors import LinesideError
from edge.modelstore.card import ModelCard, read_card, sha256_file, write_card
from training.demo_model import _offline_ultralytics
from training.export import onnx_export
from training.quantize import quantize_model


def export_at(model_dir: Path, imgsz: int, out_dir: Path, weights: Path | None = None) -> ModelCard:
    """`model_dir`'s model exported at imgsz x imgsz into out_dir, its card copied with the new size.

    With `weights` the model's own weights are exported; without, a YOLOv8n timing twin (untrained),
    whose card says so in its version ("-twin").
    """
    card = read_card(model_dir)
    work = out_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    yolo = _offline_ultralytics(work)
    if weights is not None and not weights.is_file():
        raise LinesideError(f"{weights}: weights file not found")
    if weights is not None:  # exported from a copy: ultralytics writes its ONNX beside the weights
        shutil.copyfile(weights, work / "weights.pt")
    model = yolo(str(work / "weights.pt") if weights is not None else _twin_yaml(work, len(card.classes)))
    exported = onnx_export(model, imgsz)
    target = out_dir / "model.onnx"
    shutil.move(exported, target)
    shutil.rmtree(work, ignore_errors=True)
    suffix = f"-{imgsz}" if weights is not None else f"-{imgsz}-twin"
    sized = card.model_copy(
        update={
            "version": f"{card.version}{suffix}",
            "sha256": sha256_file(target),
            "input": card.input.model_copy(update={"width": imgsz, "height": imgsz}),
            "metrics": {},
        }
    )
    write_card(out_dir, sized)
    return sized


def _twin_yaml(work: Path, classes: int) -> str:
    """yolov8n.yaml with the card's class count (the file name keeps ultralytics' scale 'n')."""
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    spec = dict(cast(Any, yaml_model_load)("yolov8n.yaml"))
    spec["nc"] = classes
    spec.pop("yaml_file", None)  # else the export lands beside that name, in the working directory
    path = work / "twin" / "yolov8n.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return str(path)


def int8_of(model_dir: Path, calib_images: Path, out_dir: Path) -> ModelCard:
    """An INT8 copy of `model_dir` (training.quantize with its defaults)."""
    return quantize_model(model_dir, calib_images, out_dir)
