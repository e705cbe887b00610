"""`lineside calibrate roi | show | check | thresholds`: set up a station's view and keep it honest.

Thin handlers over calibration/; `lineside calibrate` (calibrate.py) adds them with
register_station_commands. Exit status: 0 done, 1 check FAIL or thresholds not confirmed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from calibration.check import check_frames, parse_limits, set_reference
from calibration.frames import Image, grab_frames, load_if_present, read_image, runtime_frame, write_png
from calibration.roi import describe_roi, draw_roi, parse_polygon, parse_rect, save_roi
from calibration.show import station_view
from calibration.thresholds import propose_thresholds, write_thresholds
from edge.errors import LinesideError
from edge.i18n import Message, say
from edge.judge.detector.detector import Detector
from edge.judge.rules import RulesConfig, rules_from_card
from edge.station.calibfile import load_calibration
from edge.station.calibsections import CheckLimits
from edge.station.check import StationReference
from edge.station.config import load_config
from lineside.commands.calibrate_report import kept
from lineside.commands.language import add_language

BAD_INPUT = 2

ROI_EXAMPLES = """examples:
  lineside calibrate roi --image frame.png --rect 40,30,560,420 --out station.json
  lineside calibrate roi --image frame.png --polygon 100,50,540,50,600,430,40,430 \
      --out station.json --png roi.png
The ROI is stored in station.json (previous kept as station.json.prev); the PNG shows it drawn
(default: station.roi.png next to station.json). Only defects centred inside it can reject a part.
"""
SHOW_EXAMPLES = """examples:
  lineside calibrate show --calibration station.json --image frame.png --png view.png
  lineside calibrate show --calibration station.json --config line.yaml --model models/pcb/2.0 --png view.png
Draws the ROI, a mm scale bar (if the station has a scale) and the model's detections (red: rejects,
orange: below its threshold, grey: outside the ROI). Model: --model, else the config's default recipe,
else the demo model.
"""
CHECK_EXAMPLES = """examples:
  lineside calibrate check --calibration station.json --set-reference --image good_view.png
  lineside calibrate check --calibration station.json --image now.png
  lineside calibrate check --calibration station.json --config line.yaml --frames 5
  lineside calibrate check --calibration station.json --image now.png --limit shift_fail_px=4
Compares focus, exposure and pose with the stored reference frame. --set-reference stores one frame
(and any --limit values) as the baseline. Limits (defaults, or as stored with the reference):
{limits}
exit status: 0 PASS or WARN, 1 FAIL, 2 bad input.
"""
THRESHOLDS_EXAMPLES = """examples:
  lineside calibrate thresholds --good samples/good --bad samples/bad --out station.json
  lineside calibrate thresholds --good g/ --bad b/ --out station.json --model models/pcb/2.0 --yes
Runs the model on this station's golden samples, proposes per-class reject confidences meeting the
target escape rate at the lowest overkill, and writes them after you confirm (--yes: without asking).
exit status: 0 written, 1 not confirmed (nothing written), 2 bad input.
"""


def register_station_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add roi, show, check and thresholds to the `lineside calibrate` sub-command parser."""
    for add in (_add_roi, _add_show, _add_check, _add_thresholds):
        add(sub)


def _parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, examples: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_language(parser)
    return parser


def _add_roi(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _parser(sub, "roi", "store the region of interest and draw it on a frame", ROI_EXAMPLES)
    parser.add_argument("--image", type=Path, required=True, help="a frame from this station's camera")
    shape = parser.add_mutually_exclusive_group(required=True)
    shape.add_argument("--rect", metavar="X,Y,W,H", help="rectangle, frame pixels, top-left origin")
    shape.add_argument("--polygon", metavar="X1,Y1,X2,Y2,...", help="corners in order, 3 or more")
    parser.add_argument(
        "--out", type=Path, required=True, help="calibration file to update (created if absent)"
    )
    parser.add_argument("--png", type=Path, help="picture of the ROI (default: <out>.roi.png)")
    parser.set_defaults(handler=_reporting("roi", handle_roi))


def _add_show(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _parser(sub, "show", "draw the ROI, scale bar and detections on a frame", SHOW_EXAMPLES)
    parser.add_argument("--calibration", type=Path, required=True, help="the station's calibration file")
    frame = parser.add_mutually_exclusive_group(required=True)
    frame.add_argument("--image", type=Path, help="a saved frame")
    frame.add_argument("--config", "--source", type=Path, help="station config: one frame from its source")
    parser.add_argument("--model", type=Path, help="model folder (model.onnx + card.json)")
    parser.add_argument("--png", type=Path, required=True, help="where to write the picture")
    parser.set_defaults(handler=_reporting("show", handle_show))


def _add_check(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = ", ".join(f"{name}={value:g}" for name, value in CheckLimits().model_dump().items())
    limits = textwrap.fill(defaults, width=100, initial_indent="  ", subsequent_indent="  ")
    parser = _parser(
        sub,
        "check",
        "compare focus, exposure and pose with the reference",
        CHECK_EXAMPLES.format(limits=limits),
    )
    parser.add_argument("--calibration", type=Path, required=True, help="the station's calibration file")
    frames = parser.add_mutually_exclusive_group(required=True)
    frames.add_argument("--image", type=Path, nargs="+", help="saved frame(s) to check")
    frames.add_argument("--config", "--source", type=Path, help="station config: grab frames from its source")
    parser.add_argument("--frames", type=int, default=3, metavar="N", help="frames to grab with --config")
    parser.add_argument("--set-reference", action="store_true", help="store the (first) frame as reference")
    parser.add_argument(
        "--limit", action="append", default=[], metavar="NAME=VALUE", help="override a limit (repeatable)"
    )
    parser.set_defaults(handler=_reporting("check", handle_check))


def _add_thresholds(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = _parser(
        sub, "thresholds", "propose per-class thresholds from golden samples", THRESHOLDS_EXAMPLES
    )
    parser.add_argument("--good", type=Path, required=True, help="folder of good parts from this station")
    parser.add_argument("--bad", type=Path, required=True, help="folder of defective parts from this station")
    parser.add_argument("--out", type=Path, required=True, help="calibration file to update")
    parser.add_argument("--model", type=Path, help="model folder (default: the demo model)")
    parser.add_argument("--target-escape", type=float, default=0.0, help="escape rate allowed (default 0)")
    parser.add_argument("--yes", action="store_true", help="write without asking")
    parser.set_defaults(handler=_reporting("thresholds", handle_thresholds))


def _reporting(
    name: str, handler: Callable[[argparse.Namespace], int]
) -> Callable[[argparse.Namespace], int]:
    """Run a handler; a LinesideError becomes one line on stderr and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except LinesideError as exc:
            print(f"lineside calibrate {name}: {exc}", file=sys.stderr)
            return BAD_INPUT

    return run


def handle_roi(args: argparse.Namespace) -> int:
    roi = parse_rect(args.rect) if args.rect is not None else parse_polygon(args.polygon)
    existing = load_if_present(args.out)
    frame = runtime_frame(existing, read_image(args.image), str(args.image))
    intrinsics_id = existing.intrinsics_id() if existing is not None else ""
    calibration = save_roi(args.out, frame, roi, intrinsics_id)
    scale = calibration.scale_for(frame.shape, str(args.out))
    png = write_png(args.png or args.out.with_suffix(".roi.png"), draw_roi(frame, roi, scale))
    was_there = kept(args.out, existing is not None)
    print(say("calib.roi.saved", args.lang, roi=describe_roi(roi, scale), out=args.out, kept=was_there))
    drawn = "calib.roi.drawn_undistorted" if intrinsics_id else "calib.roi.drawn"
    print(say(drawn, args.lang, image=args.image, png=png))
    return 0


def _model_dir(model: Path | None, config: Path | None) -> Path:
    if model is not None:
        return model
    if config is not None:
        station = load_config(config)
        recipe = station.recipe(station.default_recipe)
        if recipe is not None:
            return recipe.model
    from lineside.demo import demo_model_dir

    return demo_model_dir()


def handle_show(args: argparse.Namespace) -> int:
    calibration = load_calibration(args.calibration)
    origin, raw = _frames(args.image, args.config, 1)[0]
    image = runtime_frame(calibration, raw, origin)
    detector = Detector(_model_dir(args.model, args.config))
    rules: RulesConfig = (
        calibration.thresholds.rules_for(detector.card, str(args.calibration))
        if calibration.thresholds is not None
        else rules_from_card(detector.card)
    )
    detections = detector.detect(image).detections
    png = write_png(args.png, station_view(image, calibration, detections, rules))
    card = detector.card
    print(
        say(
            "calib.show.line",
            args.lang,
            origin=origin,
            count=len(detections),
            model=card.name,
            version=card.version,
            calibration=args.calibration,
        )
    )
    print(say("calib.saved_file", args.lang, path=png))
    return 0


def _frames(images: list[Path] | Path | None, config: Path | None, count: int) -> list[tuple[str, Image]]:
    if images is not None:
        paths = images if isinstance(images, list) else [images]
        return [(str(path), read_image(path)) for path in paths]
    if config is None:
        raise LinesideError("give --image or --config")
    return grab_frames(config, count)


def handle_check(args: argparse.Namespace) -> int:
    if args.set_reference:
        existing = load_calibration(args.calibration).reference if args.calibration.exists() else None
        limits = parse_limits(args.limit, existing.limits if existing else CheckLimits())
        origin, image = _frames(args.image, args.config, 1)[0]
        section = set_reference(args.calibration, image, limits)
        measured = {"focus": section.focus, "mean": section.exposure.mean, "features": section.features}
        print(say("calib.reference.line", args.lang, origin=origin, **measured))
        image = args.calibration.parent / section.image
        print(say("calib.reference.saved", args.lang, image=image, calibration=args.calibration))
        return 0
    reference = StationReference.load(args.calibration)
    limits = parse_limits(args.limit, reference.section.limits)
    frames = _frames(args.image, args.config, args.frames)
    report = check_frames(reference, frames, limits)
    taken = reference.section.taken or Message("calib.taken_unknown")
    where = {"calibration": args.calibration, "image": reference.section.image, "frames": len(frames)}
    print(say("calib.check_head", args.lang, taken=taken, **where))
    for line in report.lines(args.lang):
        print(f"  {line}")
    print(say("calib.result", args.lang, status=Message(f"check.{report.status.value}")))
    return 1 if report.failed else 0


def confirm(question: str, stdin: TextIO, out: TextIO) -> bool:
    """Ask a yes/no question; anything but y/yes, or end of input, is no."""
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    answer = stdin.readline()
    if not answer:
        print("", file=out)
    return answer.strip().lower() in ("y", "yes")


def handle_thresholds(args: argparse.Namespace) -> int:
    detector = Detector(_model_dir(args.model, None))
    proposal = propose_thresholds(detector, args.good, args.bad, args.out, args.target_escape)
    for line in proposal.lines(args.lang):
        print(line)
    question = say("calib.thresholds.ask", args.lang, out=args.out)
    if not args.yes and not confirm(question, sys.stdin, sys.stdout):
        print(say("calib.thresholds.not_written", args.lang, out=args.out))
        return 1
    existed = args.out.exists()
    write_thresholds(args.out, proposal)
    print(say("calib.thresholds.saved", args.lang, out=args.out, kept=kept(args.out, existed)))
    return 0
