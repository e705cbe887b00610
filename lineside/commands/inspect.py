"""`lineside inspect`: judge image files with the line's own judges (detector and rules, classifier, anomaly
model, or a recipe's chain of them), one result per image."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.errors import ErrorCode, LinesideError
from edge.i18n import say
from edge.judge.detector.config import DetectorConfig
from edge.judge.inspection import Decision
from edge.judge.inspector import Inspection, Inspector, Model, load_model
from edge.sources.config import SourceConfig
from edge.sources.imagecheck import read_image_file
from edge.station.config import RecipeConfig, load_config

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help=say("help.inspect", lang),
        description=say("help.inspect.about", lang),
        epilog=say("help.inspect.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, help=say("help.inspect.paths", lang))
    parser.add_argument("--model", type=Path, help=say("help.inspect.model", lang))
    parser.add_argument("--config", type=Path, help=say("help.inspect.config", lang))
    parser.add_argument("--recipe", type=int, help=say("help.inspect.recipe", lang))
    parser.add_argument("--json", action="store_true", help=say("help.inspect.json", lang))
    parser.add_argument(
        "--min-confidence", type=float, metavar="F", help=say("help.inspect.min_confidence", lang)
    )
    parser.set_defaults(handler=handle)


def iter_images(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        else:
            yield path  # a missing or non-image file is reported as a FAULT line for that path


def _recipe(args: argparse.Namespace, primary: Model) -> RecipeConfig:
    if args.config is None:
        return RecipeConfig(number=0, name="inspect", model=primary.model_dir)
    config = load_config(args.config)
    number = args.recipe if args.recipe is not None else config.default_recipe
    recipe = config.recipe(number)
    if recipe is None:
        raise LinesideError(f"{args.config}: --recipe {number} is not one of its recipes")
    return recipe


def _model_dir(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return Path(args.model)
    if args.config is not None:
        config = load_config(args.config)
        recipe = config.recipe(args.recipe if args.recipe is not None else config.default_recipe)
        if recipe is not None:
            return recipe.model
    from lineside.demo import demo_model_dir

    return demo_model_dir()


def judge(path: Path, inspector: Inspector, floor: float | None) -> dict[str, Any]:
    """One image's verdict as the JSON object `lineside inspect --json` prints."""
    try:
        image = read_image_file(path, SourceConfig(kind="folder", path=path.parent))
    except LinesideError as exc:
        inspection = Inspection(Decision.fault(ErrorCode.FRAME, str(exc)))
    else:
        inspection = inspector.inspect(image, conf_floor=floor)
    return {
        "image": str(path),
        "verdict": inspection.decision.verdict.value,
        "reasons": list(inspection.decision.reasons),
        "detections": [
            {"class": d.class_name, "confidence": round(d.confidence, 4), "box": [round(v, 1) for v in d.box]}
            for d in inspection.detections
        ],
        "stages": [stage.to_json() for stage in inspection.stages],
    }


def handle(args: argparse.Namespace) -> int:
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        print("lineside inspect: --min-confidence must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        primary = load_model(_model_dir(args), DetectorConfig())
        recipe = _recipe(args, primary)
        stage_models = {s.model: load_model(s.model, DetectorConfig()) for s in recipe.stages}
        inspector = Inspector.load(recipe, primary, stage_models)
    except LinesideError as exc:
        print(f"lineside inspect: {exc}", file=sys.stderr)
        return 2
    faults = 0
    for path in iter_images(args.paths):
        outcome = judge(path, inspector, args.min_confidence)
        faults += outcome["verdict"] == "FAULT"
        if args.json:
            print(json.dumps(outcome), flush=True)
        else:
            print(f"{outcome['verdict']:<6} {path}  {outcome['reasons'][0]}", flush=True)
    return 1 if faults else 0
