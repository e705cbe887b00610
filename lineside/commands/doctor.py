"""`lineside doctor`: check an installation, one PASS/WARN/FAIL line per check; exit 1 on any FAIL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.i18n import say
from lineside.commands.language import add_language
from lineside.doctor.checks import DoctorOptions, run_checks
from lineside.doctor.report import as_json, as_text, exit_code


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help=say("help.doctor", lang),
        description=say("help.doctor.about", lang),
        epilog=say("help.doctor.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", type=Path, help=say("help.doctor.config", lang))
    parser.add_argument("--json", action="store_true", help=say("help.doctor.json", lang))
    add_language(parser, lang)
    parser.add_argument(
        "--calibration-max-age-days",
        type=_positive,
        default=180.0,
        metavar="DAYS",
        help=say("help.doctor.max_age", lang),
    )
    parser.add_argument(
        "--disk-warn-gb", type=_positive, default=2.0, metavar="GIB", help=say("help.doctor.disk_warn", lang)
    )
    parser.add_argument(
        "--disk-fail-gb", type=_positive, default=0.5, metavar="GIB", help=say("help.doctor.disk_fail", lang)
    )
    parser.add_argument(
        "--camera-timeout-s", type=_positive, metavar="S", help=say("help.doctor.camera_timeout", lang)
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    options = DoctorOptions(
        config=args.config,
        calibration_max_age_days=args.calibration_max_age_days,
        disk_warn_gb=args.disk_warn_gb,
        disk_fail_gb=args.disk_fail_gb,
        camera_timeout_s=args.camera_timeout_s,
    )
    checks = run_checks(options)
    sys.stdout.write(as_json(checks) if args.json else as_text(checks, args.lang))
    return exit_code(checks)
