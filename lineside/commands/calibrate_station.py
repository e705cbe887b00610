"""`lineside calibrate roi | show | check | thresholds`: set up a station's view and keep it honest.

Thin handlers over calibration/; `lineside calibrate` (calibrate.py) adds them with
register_station_commands. Exit status: 0 done, 1 check FAIL or thresholds not confirmed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import unicodedata
from pathlib import Path
from typing import TextIO, TypeAlias

from calibration.check import check_frames, parse_limits, set_reference
from calibration.errors import InputError
from calibration.frames import Image, grab_frames, load_if_present, read_image, runtime_frame, write_png
from calibration.roi import draw_roi, parse_polygon, parse_rect, roi_message, save_roi
from calibration.show import station_view
from calibration.thresholds import propose_thresholds, write_thresholds
from edge.i18n import Message, say
from edge.judge.detector.detector import Detector
from edge.judge.rules import RulesConfig, rules_from_card
from edge.station.calibfile import CalibrationFile, load_calibration
from edge.station.calibsections import CheckLimits
from edge.station.check import StationReference
from edge.station.config import load_config
from lineside.commands.calibrate_errors import reporting
from lineside.commands.calibrate_report import kept
from lineside.commands.language import add_language

YES = ("y", "yes", "예", "네")  # the answers that write; anything else, or nothing, is no

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register_station_commands(sub: Subparsers, lang: str) -> None:
    """Add roi, show, check and thresholds to the `lineside calibrate` sub-command parser, their help texts
    in `lang`."""
    for add in (_add_roi, _add_show, _add_check, _add_thresholds):
        add(sub, lang)


def _parser(sub: Subparsers, name: str, lang: str, examples: str) -> argparse.ArgumentParser:
    """A step's parser: its summary is `help.calibrate.<name>`, `examples` its epilog."""
    summary = say(f"help.calibrate.{name}", lang)
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_language(parser, lang)
    return parser


def _add_roi(sub: Subparsers, lang: str) -> None:
    parser = _parser(sub, "roi", lang, say("help.calibrate.roi.examples", lang))
    parser.add_argument("--image", type=Path, required=True, help=say("help.calibrate.roi.image", lang))
    shape = parser.add_mutually_exclusive_group(required=True)
    shape.add_argument("--rect", metavar="X,Y,W,H", help=say("help.calibrate.roi.rect", lang))
    shape.add_argument("--polygon", metavar="X1,Y1,X2,Y2,...", help=say("help.calibrate.roi.polygon", lang))
    parser.add_argument("--out", type=Path, required=True, help=say("help.calibrate.out", lang))
    parser.add_argument("--png", type=Path, help=say("help.calibrate.roi.png", lang))
    parser.set_defaults(handler=reporting("roi", handle_roi))


def _add_show(sub: Subparsers, lang: str) -> None:
    parser = _parser(sub, "show", lang, say("help.calibrate.show.examples", lang))
    parser.add_argument(
        "--calibration", type=Path, required=True, help=say("help.calibrate.calibration", lang)
    )
    frame = parser.add_mutually_exclusive_group(required=True)
    frame.add_argument("--image", type=Path, help=say("help.calibrate.show.image", lang))
    frame.add_argument("--config", "--source", type=Path, help=say("help.calibrate.show.config", lang))
    parser.add_argument("--model", type=Path, help=say("help.calibrate.show.model", lang))
    parser.add_argument("--png", type=Path, required=True, help=say("help.calibrate.show.png", lang))
    parser.set_defaults(handler=reporting("show", handle_show))


def _add_check(sub: Subparsers, lang: str) -> None:
    defaults = ", ".join(f"{name}={value:g}" for name, value in CheckLimits().model_dump().items())
    limits = textwrap.fill(defaults, width=100, initial_indent="  ", subsequent_indent="  ")
    parser = _parser(sub, "check", lang, say("help.calibrate.check.examples", lang, limits=limits))
    parser.add_argument(
        "--calibration", type=Path, required=True, help=say("help.calibrate.calibration", lang)
    )
    frames = parser.add_mutually_exclusive_group(required=True)
    frames.add_argument("--image", type=Path, nargs="+", help=say("help.calibrate.check.image", lang))
    frames.add_argument("--config", "--source", type=Path, help=say("help.calibrate.check.config", lang))
    parser.add_argument(
        "--frames", type=int, default=3, metavar="N", help=say("help.calibrate.check.frames", lang)
    )
    parser.add_argument(
        "--set-reference", action="store_true", help=say("help.calibrate.check.set_reference", lang)
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=say("help.calibrate.check.limit", lang),
    )
    parser.set_defaults(handler=reporting("check", handle_check))


def _add_thresholds(sub: Subparsers, lang: str) -> None:
    parser = _parser(sub, "thresholds", lang, say("help.calibrate.thresholds.examples", lang))
    parser.add_argument("--good", type=Path, required=True, help=say("help.calibrate.thresholds.good", lang))
    parser.add_argument("--bad", type=Path, required=True, help=say("help.calibrate.thresholds.bad", lang))
    parser.add_argument("--out", type=Path, required=True, help=say("help.calibrate.thresholds.out", lang))
    parser.add_argument("--model", type=Path, help=say("help.calibrate.thresholds.model", lang))
    parser.add_argument(
        "--target-escape", type=float, default=0.0, help=say("help.calibrate.thresholds.target_escape", lang)
    )
    parser.add_argument("--yes", action="store_true", help=say("help.calibrate.thresholds.yes", lang))
    parser.set_defaults(handler=reporting("thresholds", handle_thresholds))


def handle_roi(args: argparse.Namespace) -> int:
    roi = parse_rect(args.rect) if args.rect is not None else parse_polygon(args.polygon)
    existing = load_if_present(args.out)
    frame = runtime_frame(existing, read_image(args.image), str(args.image))
    intrinsics_id = existing.intrinsics_id() if existing is not None else ""
    calibration = save_roi(args.out, frame, roi, intrinsics_id)
    scale = calibration.scale_for(frame.shape, str(args.out))
    png = write_png(args.png or args.out.with_suffix(".roi.png"), draw_roi(frame, roi, scale))
    was_there = kept(args.out, existing is not None)
    print(say("calib.roi.saved", args.lang, roi=roi_message(roi, scale), out=args.out, kept=was_there))
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


def _calibration(path: Path) -> CalibrationFile:
    """The station's calibration file, which must be there (a missing one is said in the reader's words)."""
    if not path.exists():
        raise InputError(Message("calib.input.no_calibration", {"path": path}))
    return load_calibration(path)


def handle_show(args: argparse.Namespace) -> int:
    calibration = _calibration(args.calibration)
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
        raise InputError(Message("calib.input.give_frames"))
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
    if _calibration(args.calibration).reference is None:
        raise InputError(Message("calib.input.no_reference", {"path": args.calibration}))
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


def confirm(question: str, stdin: TextIO, out: TextIO, lang: str | None = "en") -> bool:
    """Ask a yes/no question; anything but y/yes (or, in any language, 예/네), or end of input, is no."""
    print(f"{question} {say('calib.thresholds.choices', lang)} ", end="", file=out, flush=True)
    answer = stdin.readline()
    if not answer:
        print("", file=out)
    return unicodedata.normalize("NFC", answer.strip().lower()) in YES


def handle_thresholds(args: argparse.Namespace) -> int:
    detector = Detector(_model_dir(args.model, None))
    proposal = propose_thresholds(detector, args.good, args.bad, args.out, args.target_escape)
    for line in proposal.lines(args.lang):
        print(line)
    question = say("calib.thresholds.ask", args.lang, out=args.out)
    if not args.yes and not confirm(question, sys.stdin, sys.stdout, args.lang):
        print(say("calib.thresholds.not_written", args.lang, out=args.out))
        return 1
    existed = args.out.exists()
    write_thresholds(args.out, proposal)
    print(say("calib.thresholds.saved", args.lang, out=args.out, kept=kept(args.out, existed)))
    return 0
