"""`lineside calibrate`: set up a station's camera: lens (intrinsics), mm scale, robot plane, and the
station steps of calibrate_station.py (roi, show, check, thresholds).

Each step updates one section of a calibration file (atomically, keeping `<file>.prev`).
Exit status: 0 saved, 1 computed but refused (over the error limit), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from calibration.boards import list_images, parse_target, read_gray
from calibration.errors import InputError
from calibration.intrinsics import DEFAULT_MIN_SHARPNESS, MIN_VIEWS, calibrate_intrinsics
from calibration.robot import fit_robot_plane, read_pairs
from calibration.scale import TILT_VARIATION_PCT, measure_scale
from edge.i18n import Message, say
from edge.station.calibfile import CalibrationFile, CameraFrame, load_calibration, update_calibration
from lineside import __version__
from lineside.commands.calibrate_errors import BAD_INPUT, reporting
from lineside.commands.calibrate_report import (
    intrinsics_lines,
    robot_lines,
    scale_lines,
    stale_note,
    where_saved,
)
from lineside.commands.language import add_language

REFUSED = 1
Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Subparsers, lang: str) -> None:
    """`lineside calibrate` and its steps, their help texts in `lang`."""
    parser = subparsers.add_parser(
        "calibrate",
        help=say("help.calibrate", lang),
        description=say("help.calibrate.about", lang),
        epilog=say("help.calibrate.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda _args: _usage(parser))
    sub = parser.add_subparsers(dest="calibrate_step", metavar="STEP")
    _add_intrinsics(sub, lang)
    _add_scale(sub, lang)
    _add_robot(sub, lang)
    try:
        from lineside.commands.calibrate_station import register_station_commands
    except ModuleNotFoundError as exc:  # only its absence is tolerated, never an error inside it
        if exc.name != "lineside.commands.calibrate_station":
            raise
    else:
        register_station_commands(sub, lang)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return BAD_INPUT


def _parser(
    sub: Subparsers, name: str, lang: str, examples: str, handler: Handler
) -> argparse.ArgumentParser:
    """A step's parser: its summary is `help.calibrate.<name>`, `examples` its epilog."""
    summary = say(f"help.calibrate.{name}", lang)
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=reporting(name, handler))
    add_language(parser, lang)
    return parser


def _add_intrinsics(sub: Subparsers, lang: str) -> None:
    examples = say("help.calibrate.intrinsics.examples", lang, min_views=MIN_VIEWS)
    parser = _parser(sub, "intrinsics", lang, examples, handle_intrinsics)
    parser.add_argument(
        "--images", type=Path, required=True, help=say("help.calibrate.intrinsics.images", lang)
    )
    parser.add_argument("--board", required=True, help=say("help.calibrate.intrinsics.board", lang))
    parser.add_argument("--out", type=Path, required=True, help=say("help.calibrate.out", lang))
    parser.add_argument(
        "--max-rms",
        type=float,
        default=1.0,
        metavar="PX",
        help=say("help.calibrate.intrinsics.max_rms", lang),
    )
    parser.add_argument("--force", action="store_true", help=say("help.calibrate.force", lang))
    parser.add_argument(
        "--min-sharpness",
        type=float,
        default=DEFAULT_MIN_SHARPNESS,
        metavar="S",
        help=say("help.calibrate.intrinsics.min_sharpness", lang, sharpness=DEFAULT_MIN_SHARPNESS),
    )
    parser.add_argument("--k3", action="store_true", help=say("help.calibrate.intrinsics.k3", lang))


def handle_intrinsics(args: argparse.Namespace) -> int:
    target = parse_target(args.board)
    result = calibrate_intrinsics(
        list_images(args.images), target, args.board, args.min_sharpness, fix_k3=not args.k3
    )
    _print(intrinsics_lines(result, args.images, target.describe(), args.min_sharpness, args.lang))
    over = result.rms_px > args.max_rms
    if over and not args.force:
        refused = say("calib.refused_intrinsics", args.lang, rms=result.rms_px, limit=args.max_rms)
        print(refused, file=sys.stderr)
        return REFUSED
    width, height = result.image_size
    calibration, where = _save(
        args.out, CameraFrame(width=width, height=height), intrinsics=result.section(over)
    )
    print(say("calib.saved_intrinsics", args.lang, where=where))
    stale = [
        name
        for name, section in (("scale", calibration.scale), ("robot", calibration.robot))
        if section is not None and section.intrinsics_id != calibration.intrinsics_id()
    ]
    if stale:
        print(stale_note(stale, args.out, args.lang))
    return 0


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _add_scale(sub: Subparsers, lang: str) -> None:
    examples = say("help.calibrate.scale.examples", lang, tilt_pct=TILT_VARIATION_PCT)
    parser = _parser(sub, "scale", lang, examples, handle_scale)
    parser.add_argument("--image", type=Path, required=True, help=say("help.calibrate.scale.image", lang))
    parser.add_argument("--target", required=True, help=say("help.calibrate.scale.target", lang))
    parser.add_argument("--out", type=Path, required=True, help=say("help.calibrate.out", lang))


def handle_scale(args: argparse.Namespace) -> int:
    target = parse_target(args.target)
    gray = read_gray(args.image)
    height, width = gray.shape[:2]
    current = load_calibration(args.out) if args.out.exists() else None
    measured = measure_scale(gray, target, str(args.image), current)
    _, where = _save(args.out, CameraFrame(width=width, height=height), scale=measured.section())
    _print(scale_lines(measured, args.lang))
    print(say("calib.saved_scale", args.lang, where=where))
    return 0


def _add_robot(sub: Subparsers, lang: str) -> None:
    parser = _parser(sub, "robot", lang, say("help.calibrate.robot.examples", lang), handle_robot)
    parser.add_argument("--pairs", type=Path, required=True, help=say("help.calibrate.robot.pairs", lang))
    parser.add_argument("--out", type=Path, required=True, help=say("help.calibrate.out", lang))
    parser.add_argument("--frame", metavar="WxH", help=say("help.calibrate.robot.frame", lang))
    parser.add_argument(
        "--max-rms", type=float, default=2.0, metavar="MM", help=say("help.calibrate.robot.max_rms", lang)
    )
    parser.add_argument("--force", action="store_true", help=say("help.calibrate.force", lang))


def handle_robot(args: argparse.Namespace) -> int:
    pairs = read_pairs(args.pairs)
    current = load_calibration(args.out) if args.out.exists() else None
    camera = _robot_camera(args.frame, current, args.out)
    outside = [
        i
        for i, (px, py) in enumerate(pairs[:, :2], 1)
        if not (0 <= px < camera.width and 0 <= py < camera.height)
    ]
    if outside:
        pair = {"path": args.pairs, "number": outside[0], "width": camera.width, "height": camera.height}
        raise InputError(Message("calib.input.pair_outside", pair))
    fit = fit_robot_plane(pairs, str(args.pairs))
    _print(robot_lines(fit, args.lang))
    if fit.rms_mm > args.max_rms and not args.force:
        print(say("calib.refused_robot", args.lang, rms=fit.rms_mm, limit=args.max_rms), file=sys.stderr)
        return REFUSED
    intrinsics_id = current.intrinsics_id() if current is not None else ""
    _, where = _save(args.out, camera, robot=fit.section(intrinsics_id))
    frames = Message("calib.frames_undistorted" if intrinsics_id else "calib.frames_raw")
    print(say("calib.saved_robot", args.lang, where=where, frames=frames))
    return 0


def _robot_camera(frame: str | None, current: CalibrationFile | None, out: Path) -> CameraFrame:
    if frame is None:
        if current is None:
            raise InputError(Message("calib.input.need_frame", {"out": out}))
        return current.camera
    width, sep, height = frame.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise InputError(Message("calib.input.bad_frame", {"text": repr(frame)}))
    return CameraFrame(width=int(width), height=int(height))


def _save(path: Path, camera: CameraFrame, **sections: object) -> tuple[CalibrationFile, Message]:
    """Update the file; also say where it went and where the previous one is."""
    existed = path.exists()
    calibration = update_calibration(path, camera, **sections, tool_version=__version__)
    return calibration, where_saved(path, existed)
