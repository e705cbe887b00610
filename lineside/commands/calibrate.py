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

import cv2

from calibration.boards import list_images, parse_target, read_gray
from calibration.intrinsics import DEFAULT_MIN_SHARPNESS, MIN_VIEWS, calibrate_intrinsics
from calibration.refusal import RefusalError
from calibration.robot import fit_robot_plane, read_pairs
from calibration.scale import TILT_VARIATION_PCT, measure_scale
from edge.errors import LinesideError
from edge.i18n import Message, say
from edge.station.calibfile import CalibrationFile, CameraFrame, load_calibration, update_calibration
from lineside import __version__
from lineside.commands.calibrate_report import (
    intrinsics_lines,
    robot_lines,
    scale_lines,
    stale_note,
    where_saved,
)
from lineside.commands.language import add_language

REFUSED, BAD_INPUT = 1, 2
Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXAMPLES = """steps, in the usual order:
  intrinsics   lens model from 8+ views of a board (the runtime then undistorts every frame)
  scale        mm per pixel on the working plane, from one image of a target lying on it
  roi, show, check, thresholds, robot
each step updates its section of one calibration file; see `lineside calibrate STEP --help`.
example:
  lineside calibrate intrinsics --images views/ --board chessboard:9x6:10mm --out station.json
  lineside calibrate scale --image plate.png --target chessboard:9x6:10mm --out station.json
exit status: 0 saved, 1 refused (error over its limit), 2 bad input.
"""
INTRINSICS_EXAMPLES = f"""examples:
  lineside calibrate intrinsics --images views/ --board chessboard:9x6:10mm --out station.json
  lineside calibrate intrinsics --images views/ --board charuco:7x5:30mm:22mm:DICT_5X5_100 --out station.json
Boards: chessboard:COLSxROWS:SQUAREmm counts INNER corners (a board of 10x7 squares is 9x6);
charuco:SQUARESXxSQUARESY:SQUAREmm:MARKERmm:DICT counts squares. Take {MIN_VIEWS}-20 sharp views, the
board tilted 20-40 degrees in different directions and reaching the frame's corners and edges.
Blurred views and views without the whole board are dropped and named; the set is refused when
fewer than {MIN_VIEWS} remain or all are tilted alike. Over --max-rms nothing is saved unless --force.
"""
SCALE_EXAMPLES = f"""examples:
  lineside calibrate scale --image plate.png --target chessboard:9x6:10mm --out station.json
  lineside calibrate scale --image plate.png --target aruco:7:50mm --out station.json
  lineside calibrate scale --image plate.png --target aruco:7:50mm:DICT_5X5_100 --out station.json
Lay the target flat where the parts lie. If station.json has intrinsics the image is undistorted first,
as the runtime does. When the scale varies by more than {TILT_VARIATION_PCT:g}% across the target (a
tilted plane), a pixel->plane homography is saved too, so positions in mm are right across the frame.
"""
ROBOT_EXAMPLES = """examples:
  lineside calibrate robot --pairs pairs.csv --out station.json
  lineside calibrate robot --pairs pairs.csv --out new.json --frame 1280x960
pairs.csv has one point per line: px,py,rx,ry (pixel in the frames the runtime sees, which are
undistorted when station.json has intrinsics; robot-plane position in mm), 4 or more points spread
over the working area, not on one line; a header line and '#' comments are allowed.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="set up and check a station: lens, mm scale, ROI, checks, thresholds, robot plane",
        description="Set up and check a station's camera; each step updates a calibration file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=lambda _args: _usage(parser))
    sub = parser.add_subparsers(dest="calibrate_step", metavar="STEP")
    _add_intrinsics(sub)
    _add_scale(sub)
    _add_robot(sub)
    try:
        from lineside.commands.calibrate_station import register_station_commands
    except ModuleNotFoundError as exc:  # only its absence is tolerated, never an error inside it
        if exc.name != "lineside.commands.calibrate_station":
            raise
    else:
        register_station_commands(sub)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return BAD_INPUT


def _parser(
    sub: Subparsers, name: str, summary: str, examples: str, handler: Handler
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=_reporting(name, handler))
    add_language(parser)
    return parser


def _reporting(name: str, handler: Handler) -> Handler:
    """Run a handler; a LinesideError (or an OS or OpenCV error) becomes one line on stderr, exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except RefusalError as exc:  # advice, in the technician's language
            message = exc.said(args.lang)
        except LinesideError as exc:
            message = str(exc)
        except OSError as exc:
            why = exc.strerror or str(exc)
            message = f"{exc.filename}: {why}" if exc.filename else why
        except cv2.error as exc:
            message = f"OpenCV: {str(exc).strip().splitlines()[-1]}"
        print(f"lineside calibrate {name}: {message}", file=sys.stderr)
        return BAD_INPUT

    return run


def _add_intrinsics(sub: Subparsers) -> None:
    parser = _parser(
        sub,
        "intrinsics",
        "compute the lens model from views of a board",
        INTRINSICS_EXAMPLES,
        handle_intrinsics,
    )
    parser.add_argument(
        "--images", type=Path, required=True, help="folder of board views (png, jpg, bmp, tif)"
    )
    parser.add_argument("--board", required=True, help="board spec, e.g. chessboard:9x6:10mm")
    parser.add_argument(
        "--out", type=Path, required=True, help="calibration file to update (created if absent)"
    )
    parser.add_argument(
        "--max-rms", type=float, default=1.0, metavar="PX", help="refuse above (default 1.0 px)"
    )
    parser.add_argument("--force", action="store_true", help="save even when the RMS is over --max-rms")
    parser.add_argument(
        "--min-sharpness",
        type=float,
        default=DEFAULT_MIN_SHARPNESS,
        metavar="S",
        help=f"drop views below this sharpness (default {DEFAULT_MIN_SHARPNESS:g}; each view's is printed)",
    )
    parser.add_argument("--k3", action="store_true", help="also fit k3 (wide-angle lenses; needs many views)")


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


def _add_scale(sub: Subparsers) -> None:
    parser = _parser(
        sub, "scale", "measure mm per pixel on the working plane from a target", SCALE_EXAMPLES, handle_scale
    )
    parser.add_argument(
        "--image", type=Path, required=True, help="a frame with the target on the working plane"
    )
    parser.add_argument(
        "--target", required=True, help="chessboard:COLSxROWS:SQUAREmm or aruco:ID:SIZEmm[:DICT]"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="calibration file to update (created if absent)"
    )


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


def _add_robot(sub: Subparsers) -> None:
    parser = _parser(
        sub, "robot", "fit pixel -> robot-plane mm from point pairs", ROBOT_EXAMPLES, handle_robot
    )
    parser.add_argument("--pairs", type=Path, required=True, help="CSV file: px,py,rx,ry per line, 4 or more")
    parser.add_argument(
        "--out", type=Path, required=True, help="calibration file to update (created if absent)"
    )
    parser.add_argument("--frame", metavar="WxH", help="frame size, needed when --out does not exist yet")
    parser.add_argument(
        "--max-rms", type=float, default=2.0, metavar="MM", help="refuse above (default 2 mm)"
    )
    parser.add_argument("--force", action="store_true", help="save even when the RMS is over --max-rms")


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
        raise LinesideError(
            f"{args.pairs}: pair {outside[0]} is outside the {camera.width}x{camera.height} frame"
        )
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
            raise LinesideError(f"{out} does not exist yet: give the frame size with --frame WxH")
        return current.camera
    width, sep, height = frame.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise LinesideError(f"--frame {frame!r}: expected WIDTHxHEIGHT, e.g. 1280x960")
    return CameraFrame(width=int(width), height=int(height))


def _save(path: Path, camera: CameraFrame, **sections: object) -> tuple[CalibrationFile, Message]:
    """Update the file; also say where it went and where the previous one is."""
    existed = path.exists()
    calibration = update_calibration(path, camera, **sections, tool_version=__version__)
    return calibration, where_saved(path, existed)
