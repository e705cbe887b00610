"""Export trained weights as a model folder the appliance loads: model.onnx (opset 17, static, simplified)
plus card.json (classes, default thresholds, dataset fingerprint, val metrics, code version, arguments).

The ONNX file is written first and the card last, both atomically: a folder with a card is complete.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_bytes, atomic_write_text
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
from training.train import offline_ultralytics

OPSET = 17
EXPORT_STAMP = "export.json"
DEFAULT_CONFIDENCE = 0.25  # the floor until `lineside eval` chooses thresholds on the val split
DEFAULT_IOU = 0.45
DEFAULT_REJECT = 0.5


def code_version() -> str:
    """lineside version plus the git commit it ran from (and `.dirty` for uncommitted changes)."""
    version = importlib.metadata.version("lineside")
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return version
    if head.returncode != 0:
        return version
    return f"{version}+g{head.stdout.strip()}" + (".dirty" if dirty.stdout.strip() else "")


def onnx_export(model: Any, imgsz: int) -> Path:
    """Export an ultralytics model to a static 1x3ximgszximgsz fp32 ONNX graph (opset 17, simplified);
    the file ultralytics wrote, beside the weights."""
    exported = model.export(
        format="onnx",
        imgsz=imgsz,
        opset=OPSET,
        simplify=True,
        dynamic=False,
        half=False,
        batch=1,
        device="cpu",
    )
    return Path(exported)


def export_onnx(yolo: Any, weights: Path, out_dir: Path, imgsz: int) -> Path:
    """The ONNX graph of `weights` (see onnx_export), written atomically to out_dir."""
    exported = onnx_export(yolo(str(weights)), imgsz)
    return atomic_write_bytes(out_dir / "model.onnx", exported.read_bytes())


def validate_onnx(
    yolo: Any, onnx_path: Path, data_yaml: Path, *, imgsz: int, classes: tuple[str, ...], work: Path
) -> dict[str, object]:
    """Box metrics of the exported ONNX model (through onnxruntime, ultralytics' val) on the val split."""
    result = yolo(str(onnx_path), task="detect").val(
        data=str(data_yaml),
        imgsz=imgsz,
        batch=1,
        device="cpu",
        plots=False,
        project=str(work / "runs"),
        name="val",
        exist_ok=True,
        conf=0.001,
        iou=0.6,
        verbose=False,
    )
    box = result.box
    per_class = {classes[int(c)]: round(float(box.ap50[i]), 4) for i, c in enumerate(box.ap_class_index)}
    return {
        "split": "val",
        "mAP50": round(float(box.map50), 4),
        "mAP50-95": round(float(box.map), 4),
        "precision": round(float(box.mp), 4),
        "recall": round(float(box.mr), 4),
        "mAP50_per_class": per_class,
    }


def _already_exported(out_dir: Path, weights: Path, work: Path) -> ModelCard | None:
    """The card in out_dir when it was exported from these very weights and its model is intact."""
    stamp = work / EXPORT_STAMP
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
        card = read_card(out_dir)
    except (OSError, ValueError, LinesideError):
        return None
    onnx_path = out_dir / card.file
    if record.get("weights_sha256") != sha256_file(weights) or not onnx_path.is_file():
        return None
    return card if sha256_file(onnx_path) == card.sha256 == record.get("onnx_sha256") else None


def export_model(
    weights: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    imgsz: int,
    data_yaml: Path,
    classes: tuple[str, ...],
    fingerprint: str,
    train_args: dict[str, object],
    work: Path,
    dataset_text: str = "",
) -> ModelCard:
    """Export `weights` to `out_dir` (model.onnx + card.json) and return the card.

    Skipped (the existing card returned) when out_dir already holds the export of these weights.
    Metrics come from ultralytics' val of the exported ONNX on `data_yaml`'s val split.
    """
    work = work.resolve()
    existing = _already_exported(out_dir, weights, work)
    if existing is not None:
        print(f"lineside train: {out_dir} already holds this export; not exporting again", file=sys.stderr)
        return existing
    yolo = offline_ultralytics(work)
    print(f"lineside train: exporting {weights} to {out_dir}", file=sys.stderr)
    onnx_path = export_onnx(yolo, weights, out_dir, imgsz)
    print("lineside train: validating the exported model on the val split", file=sys.stderr)
    metrics = validate_onnx(yolo, onnx_path, data_yaml, imgsz=imgsz, classes=classes, work=work)
    card = ModelCard(
        name=name,
        version=version,
        sha256=sha256_file(onnx_path),
        input=InputSpec(width=imgsz, height=imgsz, color="RGB", scale=1.0 / 255.0, pad_value=114),
        classes=classes,
        thresholds=Thresholds(
            confidence=DEFAULT_CONFIDENCE, iou=DEFAULT_IOU, per_class=dict.fromkeys(classes, DEFAULT_REJECT)
        ),
        training=TrainingInfo(
            data_fingerprint=fingerprint, code_version=code_version(), args=train_args, dataset=dataset_text
        ),
        metrics=metrics,
    )
    write_card(out_dir, card)
    record = {"weights_sha256": sha256_file(weights), "onnx_sha256": card.sha256, "out_dir": str(out_dir)}
    atomic_write_text(work / EXPORT_STAMP, json.dumps(record, indent=1))
    return card
