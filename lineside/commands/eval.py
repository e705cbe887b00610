"""`lineside eval`: measure an exported model through the line's own detector (mAP, escape, overkill,
thresholds for a target escape rate), compare data sets side by side, or check export parity.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.errors import LinesideError
from edge.i18n import say

EXAMPLES = """examples:
  lineside eval --model models/pcb/1.0.0 --data datasets/pcb --out reports/pcb
  lineside eval --model M --data D --target-escape 0.005 --write-thresholds   store thresholds in the card
  lineside eval --model M --data siteA --data siteB --data siteC --out reports/x   side-by-side table
  lineside eval --parity --model M --weights runs/x/weights/best.pt --data D --limit 50
  lineside eval --parity --model M-int8 --reference-model M --data D         INT8 against fp32
  lineside eval --model models/tiles-anomaly/1.0.0 --data datasets/tiles --out reports/a   classify/anomaly
  lineside eval --config line.yaml --recipe 2 --data D --out reports/chain   a recipe's chain of judges
exit status: 0 done (parity passed), 1 parity failed or the escape target was missed with
--write-thresholds, 2 bad arguments, model or data.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    """Add `eval`: an engineer's command; only its line in `lineside --help` is said in `lang`."""
    parser = subparsers.add_parser(
        "eval",
        help=say("help.eval", lang),
        description="Score a labelled YOLO split through the line's detector; report box and part metrics.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, help="model folder (model.onnx + card.json), of any kind")
    parser.add_argument("--config", type=Path, help="station config: evaluate its recipe's chain of judges")
    parser.add_argument("--recipe", type=int, help="recipe number in --config (default: its default_recipe)")
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        required=True,
        help="YOLO data set folder; repeat to compare sites",
    )
    parser.add_argument("--split", default="val", help="split to score (default val; never the test split)")
    parser.add_argument("--target-escape", type=float, default=0.01, help="part escape rate to meet (0.01)")
    parser.add_argument("--out", type=Path, help="report folder: report.json, report.md, PNG plots")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--write-thresholds", action="store_true", help="write the chosen per-class thresholds into the card"
    )
    parity = parser.add_argument_group("parity")
    parity.add_argument("--parity", action="store_true", help="compare the model with a reference instead")
    parity.add_argument(
        "--weights", type=Path, help="PyTorch checkpoint (best.pt) the model was exported from"
    )
    parity.add_argument(
        "--reference-model", type=Path, help="model folder to compare against (fp32 for INT8)"
    )
    parity.add_argument("--limit", type=int, default=50, help="parity: images of the split to compare (50)")
    parity.add_argument("--score-tolerance", type=float, help="parity: largest allowed score difference")
    parity.add_argument("--iou-tolerance", type=float, help="parity: smallest allowed IoU of paired boxes")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        if args.parity:
            return _parity(args)
        if args.config is not None or (args.model is not None and _task(args.model) != "detect"):
            return _evaluate_judges(args)
        if args.model is None:
            raise LinesideError("give --model (a model folder) or --config (a recipe's chain)")
        return _evaluate(args)
    except LinesideError as exc:
        print(f"lineside eval: {exc}", file=sys.stderr)
        return 2


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import cross_site, evaluate, markdown, write_thresholds

    if args.write_thresholds and len(args.data) != 1:
        raise LinesideError(
            "--write-thresholds needs exactly one --data (thresholds are chosen on one split)"
        )
    common = {"plots": not args.no_plots}
    if len(args.data) == 1:
        reports = [evaluate(args.model, args.data[0], args.split, args.target_escape, args.out, **common)]
    else:
        reports = cross_site(args.model, args.data, args.split, args.target_escape, args.out, **common)
    print(markdown(reports))
    if args.out is not None:
        print(f"report written to {args.out}", file=sys.stderr)
    if args.write_thresholds:
        report = reports[0]
        if not report.target_met:
            print(
                f"lineside eval: escape rate {report.escape_rate:.4f} misses the target {args.target_escape}:"
                " thresholds not written",
                file=sys.stderr,
            )
            return 1
        card = write_thresholds(args.model, report)
        print(f"thresholds written to {args.model / 'card.json'}: {card.thresholds.per_class}")
    return 0


def _task(model: Path) -> str:
    from edge.modelstore.card import read_card

    return read_card(model).task


def _evaluate_judges(args: argparse.Namespace) -> int:
    """Classify and anomaly models, and recipes' chains: AUROC, escape/overkill, thresholds, plots."""
    from training.judges.judge_eval import evaluate_judges, stage_model_dirs
    from training.judges.judge_report import markdown, write_stage_thresholds
    from training.judges.judge_scores import recipe_for

    if args.write_thresholds and len(args.data) != 1:
        raise LinesideError(
            "--write-thresholds needs exactly one --data (thresholds are chosen on one split)"
        )
    recipe = recipe_for(args.model, args.config, args.recipe)
    reports = evaluate_judges(recipe, args.data, args.split, args.target_escape, args.out, not args.no_plots)
    print(markdown(reports))
    if args.out is not None:
        print(f"report written to {args.out}", file=sys.stderr)
    if args.write_thresholds:
        for line in write_stage_thresholds(reports[0], stage_model_dirs(recipe)):
            print(f"threshold written: {line}")
    return 0


def _judge_parity(args: argparse.Namespace) -> int:
    """A classify or anomaly model (e.g. INT8) against another of its kind (fp32), through edge."""
    from training.evaldata import read_split
    from training.judges.judge_int8 import judge_parity

    if args.reference_model is None:
        raise LinesideError("--parity of a classify or anomaly model needs --reference-model (the fp32 one)")
    images = [item.image for item in read_split(args.data[0], args.split).items[: args.limit]]
    report = judge_parity(args.model, args.reference_model, images)
    if args.out is not None:
        from edge.atomic import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "parity.json", json.dumps(report, indent=2) + "\n")
    state = "PASSED" if report["passed"] else f"FAILED on {len(report['failed'])} images"
    print(f"parity {state}: {report['images']} images, max score difference {report['max_score_diff']:.4g}")
    return 0 if report["passed"] else 1


def _parity(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from training.evaldata import read_split
    from training.parity import FP32_TOLERANCE, INT8_TOLERANCE, check_parity

    if args.model is None:
        raise LinesideError("--parity needs --model")
    if (args.weights is None) == (args.reference_model is None):
        raise LinesideError("--parity needs exactly one of --weights (PyTorch) or --reference-model (ONNX)")
    if len(args.data) != 1:
        raise LinesideError("--parity takes exactly one --data (the images to compare on)")
    if args.limit < 1:
        raise LinesideError(f"--limit {args.limit}: give at least one image")
    if _task(args.model) != "detect":
        return _judge_parity(args)
    reference = args.weights if args.weights is not None else args.reference_model
    tolerance = FP32_TOLERANCE if args.weights is not None else INT8_TOLERANCE
    if args.score_tolerance is not None:
        tolerance = replace(tolerance, score=args.score_tolerance)
    if args.iou_tolerance is not None:
        tolerance = replace(tolerance, iou=args.iou_tolerance)
    images = [item.image for item in read_split(args.data[0], args.split).items[: args.limit]]
    report = check_parity(args.model, reference, images, tolerance)
    if args.out is not None:
        from edge.atomic import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "parity.json", json.dumps(report.to_json(), indent=2) + "\n")
    print(report.summary())
    return 0 if report.passed else 1
