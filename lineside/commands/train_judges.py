"""`lineside train --kind classify|anomaly`: the pretrained-backbone kinds, from flags and an optional
settings YAML (its keys are the settings' fields; flags win), written as model.onnx + card.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from edge.errors import LinesideError
from edge.jsonmodel import validate_model

# Flags shared with the detector's `lineside train`, by the settings field they set.
COMMON_FLAGS = ("imgsz", "epochs", "batch", "seed", "device", "workers", "lr", "target_escape")
CLASSIFY_FLAGS = ("tta", "crop", "pool")
ANOMALY_FLAGS = (
    "coreset_ratio",
    "max_bank",
    "chunk_rows",
    "quantile",
    "margin",
    "min_area_px",
    "feature_dims",
    "patch_stride",
)
DETECTOR_ONLY = ("model", "tile", "tile_overlap", "time_hours", "plots", "preview_augment")
NOT_FOR_ANOMALY = ("epochs", "workers", "lr")  # nothing to fine-tune: features and a memory bank


def _values(args: argparse.Namespace, name: str) -> dict[str, Any]:
    for flag in DETECTOR_ONLY:
        if getattr(args, flag, None) is not None:
            raise LinesideError(f"--{flag.replace('_', '-')}: only for --kind detect")
    values: dict[str, Any] = {}
    if args.recipe is not None:
        try:
            loaded = yaml.safe_load(Path(args.recipe).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LinesideError(f"{args.recipe}: cannot read the settings ({exc})") from None
        if not isinstance(loaded, dict):
            raise LinesideError(f"{args.recipe}: expected a mapping of settings")
        values.update({k: v for k, v in loaded.items() if k != "kind"})
        if loaded.get("kind", args.kind) != args.kind:
            raise LinesideError(f"{args.recipe}: kind {loaded['kind']} does not match --kind {args.kind}")
    anomaly = args.kind == "anomaly"
    own, other = (ANOMALY_FLAGS, CLASSIFY_FLAGS) if anomaly else (CLASSIFY_FLAGS, ANOMALY_FLAGS)
    for flag in other:
        if getattr(args, flag, None) is not None:
            raise LinesideError(f"--{flag.replace('_', '-')}: not for --kind {args.kind}")
    flags = COMMON_FLAGS + own
    for flag in flags:
        value = getattr(args, flag, None)
        if value is None:
            continue
        if args.kind == "anomaly" and flag in NOT_FOR_ANOMALY:
            raise LinesideError(f"--{flag.replace('_', '-')}: an anomaly model is not trained in epochs")
        values[flag] = value
    if args.name is not None:
        values["name"] = args.name
    values.setdefault("name", name)
    values["version"] = args.version
    values["data"] = args.data
    values["out"] = args.out or Path("models") / values["name"] / args.version
    values["work"] = args.work or Path("build") / "train" / values["name"] / args.version
    return values


def handle_judge(args: argparse.Namespace, default_name: str) -> int:
    """Train and export a classify or anomaly model; exit 2 on bad settings or data, 1 on a failed run."""
    try:
        values = _values(args, default_name)
        if args.kind == "classify":
            from training.judges.classify_train import load_classify_settings, train_classifier

            out = train_classifier(load_classify_settings(values, str(args.recipe or "command line")))
        else:
            from training.judges.anomaly_train import AnomalySettings, train_anomaly

            out = train_anomaly(validate_model(AnomalySettings, values, str(args.recipe or "command line")))
    except LinesideError as exc:
        print(f"lineside train: {exc}", file=sys.stderr)
        return 2
    from edge.modelstore.card import read_card

    card = read_card(out)
    metrics = {k: v for k, v in card.metrics.items() if not isinstance(v, (dict, list))}
    print(f"lineside train: wrote {out} ({card.task}, threshold {card.thresholds.score}, {metrics})")
    if args.int8:
        return _int8(out, Path(values["data"]), Path(values["work"]))
    return 0


def _int8(out: Path, data: Path, work: Path) -> int:
    """The INT8 sibling (backbone quantised; an anomaly model's bank rebuilt from its INT8 features) and
    its parity with the fp32 model, kept for the gate."""
    from training.evaldata import read_split
    from training.judges.judge_int8 import judge_parity, quantize_judge
    from training.registry import save_parity

    int8_dir = out.with_name(out.name + "-int8")
    try:
        train = [item.image for item in read_split(data, "train").items]
        val = [item.image for item in read_split(data, "val").items]
        card = quantize_judge(out, train[:: max(1, len(train) // 64)][:64], int8_dir)
        if card.task == "anomaly":
            from training.judges.anomaly_train import find_data, stderr_progress
            from training.judges.int8_bank import rebank_int8

            parts = find_data(data, work, stderr_progress)
            rebank_int8(int8_dir, parts.train_good, parts.val_good, parts.val_defective, stderr_progress)
        parity = judge_parity(int8_dir, out, val[:: max(1, len(val) // 50)][:50])
    except LinesideError as exc:
        print(f"lineside train: INT8: {exc}", file=sys.stderr)
        return 1
    save_parity(int8_dir, parity)
    verdict = (
        "passed" if parity["passed"] else f"FAILED on {len(parity['failed'])} of {parity['images']} parts"
    )
    print(f"lineside train: wrote {int8_dir} (INT8); parity with fp32 {verdict}, "
          f"max score difference {parity['max_score_diff']:.4g}")  # fmt: skip
    return 0 if parity["passed"] else 1
