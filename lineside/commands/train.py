"""`lineside train`: train a model offline (a detector, a classifier or an anomaly model) and export the
model folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import LinesideError
from edge.i18n import say

if TYPE_CHECKING:
    from training.train import TrainSettings

EXAMPLES = """examples:
  lineside train --data datasets/pcb --model yolov8n.yaml --imgsz 320 --epochs 40
  lineside train --data datasets/pcb --recipe training/recipes/deeppcb.yaml --device 0 --int8
  lineside train --data datasets/tiles --recipe r.yaml --tile 640 --tile-overlap 0.2 --imgsz 640
  lineside train --data datasets/pcb --recipe r.yaml --preview-augment augment.png   (and stop)
  lineside train --kind classify --data datasets/tiles --imgsz 256 --epochs 8   part classifier (pretrained)
  lineside train --kind anomaly --data datasets/tiles --coreset-ratio 0.01   good parts only, memory bank
Re-running the same command resumes an interrupted run (from its last.pt) and skips finished steps.
Never downloads: --model is a model YAML (built from scratch) or a local .pt checkpoint.
exit status: 0 model written, 2 bad arguments or data, 1 training or export failed.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    """Add `train`: an engineer's command; only its line in `lineside --help` is said in `lang`."""
    parser = subparsers.add_parser(
        "train",
        help=say("help.train", lang),
        description="Train on a YOLO-layout folder (data.yaml), export ONNX and write the model card. "
        "--kind classify and anomaly stand on a pretrained EfficientNet-Lite0 (docs/judges.md).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--data", type=Path, required=True, help="YOLO-layout folder with data.yaml (or the data.yaml)")
    add(
        "--kind",
        choices=("detect", "classify", "anomaly"),
        default="detect",
        help="detect (ultralytics detector, default), classify (part classifier), anomaly (good parts only)",
    )
    add("--recipe", type=Path, help="training recipe YAML (training/recipes/); flags override its values")
    add("--model", help="model YAML (e.g. yolov8n.yaml) or a local .pt checkpoint (default yolov8n.yaml)")
    add("--name", help="model name (default: the recipe's, else the data folder's name)")
    add("--version", default="1.0.0", help="model version (default 1.0.0)")
    add("--out", type=Path, help="model folder to write (default models/<name>/<version>)")
    add("--work", type=Path, help="runs, tiles and caches (default build/train/<name>/<version>)")
    add("--imgsz", type=int, help="square input size in pixels (default 640, or the tile size)")
    add("--epochs", type=int, help="epochs (default 100)")
    add("--batch", type=int, help="batch size (default 16)")
    add("--seed", type=int, help="random seed (default 0)")
    add("--time-hours", type=float, help="wall-clock cap; ultralytics fits the epochs to it")
    add("--device", help="auto (default: CUDA when available), cpu, or a CUDA index such as 0")
    add("--workers", type=int, help="dataloader workers (default min(8, cores))")
    add("--tile", type=int, metavar="N", help="train on overlapping N-pixel tiles (small defects)")
    add("--tile-overlap", type=float, metavar="F", help="tile overlap fraction (default 0.2)")
    add("--plots", action=argparse.BooleanOptionalAction, default=None, help="ultralytics plots (default on)")
    judges = parser.add_argument_group("classify and anomaly (--kind)")
    judges.add_argument("--lr", type=float, help="classify: backbone learning rate, the head's 10x (1e-4)")
    judges.add_argument("--target-escape", type=float, help="escape rate the threshold is chosen for (0.05)")
    judges.add_argument(
        "--tta", choices=("none", "hflip", "flips"), help="classify: test-time flips in the model (none)"
    )
    judges.add_argument(
        "--crop",
        type=int,
        metavar="N",
        help="classify: train on N-px windows of the part at --imgsz (small defects; needs --pool max)",
    )
    judges.add_argument(
        "--pool", choices=("avg", "max"), help="classify: part logits from the average or strongest location"
    )
    judges.add_argument("--coreset-ratio", type=float, help="anomaly: fraction of good patches kept")
    judges.add_argument("--max-bank", type=int, help="anomaly: most memory-bank rows")
    judges.add_argument(
        "--feature-dims", type=int, help="anomaly: PCA to this many feature dimensions (all 152)"
    )
    judges.add_argument(
        "--patch-stride",
        type=int,
        choices=(8, 16),
        help="anomaly: input px between patches (8; 16 searches a quarter of the patches)",
    )
    judges.add_argument("--chunk-rows", type=int, help="anomaly: bank rows per distance block (memory bound)")
    judges.add_argument("--quantile", type=float, help="anomaly, good-only threshold: quantile (0.99)")
    judges.add_argument("--margin", type=float, help="anomaly, good-only threshold: factor over it (1.10)")
    judges.add_argument("--min-area-px", type=float, help="anomaly: least defect area to reject (0: any)")
    add(
        "--int8",
        action="store_true",
        help="also write an INT8 model to <version>-int8 (training/quantize.py)",
    )
    add(
        "--preview-augment",
        type=Path,
        metavar="PNG",
        help="write a grid of augmented training images and stop",
    )
    parser.set_defaults(handler=handle)


def _overrides(args: argparse.Namespace, name: str | None) -> dict[str, object]:
    imgsz = args.imgsz if args.imgsz is not None else args.tile
    return {
        "name": name,
        "model": args.model,
        "imgsz": imgsz,
        "epochs": args.epochs,
        "batch": args.batch,
        "seed": args.seed,
        "time_hours": args.time_hours,
        "device": args.device,
        "workers": args.workers,
        "tile": args.tile,
        "tile_overlap": args.tile_overlap,
        "plots": args.plots,
    }


def _default_name(args: argparse.Namespace) -> str | None:
    """The data folder's name unless the recipe names the model (None: let the recipe's name stand)."""
    if args.name is not None or args.recipe is not None:
        return str(args.name) if args.name is not None else None
    data = Path(args.data).resolve()
    folder = data if data.is_dir() else data.parent
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in folder.name) or "model"


def _preview(args: argparse.Namespace, settings: TrainSettings) -> int:
    """Write the augmentation preview grid (training/augment.py) and stop: nothing is trained."""
    from training.train import go_offline

    go_offline()
    from training.augment import preview_grid

    section = settings.albumentations if isinstance(settings.albumentations, dict) else None
    if settings.albumentations is False:
        print(
            "lineside train: albumentations is off in this recipe; previewing the defaults", file=sys.stderr
        )
    data = args.data if args.data.is_dir() else args.data.parent
    try:
        written = preview_grid(data, section, args.preview_augment, seed=settings.seed)
    except LinesideError as exc:
        print(f"lineside train: {exc}", file=sys.stderr)
        return 2
    print(f"lineside train: wrote {written} (augmented training images, boxes drawn)")
    return 0


def handle(args: argparse.Namespace) -> int:
    if args.kind != "detect":
        from lineside.commands.train_judges import handle_judge

        folder = args.data if args.data.is_dir() else args.data.parent
        return handle_judge(
            args, "".join(c if c.isalnum() or c in "_.-" else "_" for c in folder.name) or "model"
        )
    from lineside.commands.train_judges import ANOMALY_FLAGS, CLASSIFY_FLAGS
    from training.train import load_settings, resolve_model

    for flag in ("lr", "target_escape", *CLASSIFY_FLAGS, *ANOMALY_FLAGS):
        if getattr(args, flag, None) is not None:  # never silently dropped
            print(
                f"lineside train: --{flag.replace('_', '-')}: only for --kind classify or anomaly",
                file=sys.stderr,
            )
            return 2
    try:
        settings = load_settings(args.recipe, _overrides(args, _default_name(args)))
        resolve_model(settings.model)  # refuse a bare weights name before anything heavy is imported
    except LinesideError as exc:
        print(f"lineside train: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("models") / settings.name / args.version
    work = args.work or Path("build") / "train" / settings.name / args.version
    if args.preview_augment is not None:
        return _preview(args, settings)
    from training.pipeline import train_and_export

    try:
        outcome = train_and_export(
            args.data, settings, out, work, version=args.version, recipe=args.recipe, int8=args.int8
        )
    except LinesideError as exc:
        print(f"lineside train: {exc}", file=sys.stderr)
        return 2
    metrics = outcome.card.metrics
    print(f"lineside train: wrote {out} (mAP50 {metrics.get('mAP50')}, mAP50-95 {metrics.get('mAP50-95')})")
    if outcome.int8_dir is not None:
        print(f"lineside train: wrote {outcome.int8_dir} (INT8)")
    return 0
