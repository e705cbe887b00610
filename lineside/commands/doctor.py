"""`lineside doctor`: check an installation, one PASS/WARN/FAIL line per check; exit 1 on any FAIL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.locale import LANGUAGES
from lineside.doctor.checks import DoctorOptions, run_checks
from lineside.doctor.report import as_json, as_text, exit_code

EXAMPLES = """checks, in order:
  config       the config loads and validates
  model[...]   every recipe's model: card, ONNX sha256, rules
  camera       the source opens and gives one frame within the timeout
  calibration  every recipe's calibration: frame size, lens, model of its thresholds, age
  modbus       the robot link's port is free (or served by a running lineside), or the robot reachable
  disk         free space where the records go
  clock, ntp   a sane date, not behind the newest record; NTP synchronisation
  runtime      Python, onnxruntime and its execution providers

examples:
  lineside doctor /etc/lineside/line.yaml
  lineside doctor line.yaml --json
"""


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the installation: config, models, camera, calibration, port, disk, clock",
        description="Check a station's installation; one PASS/WARN/FAIL line per check. Exit 0 when no "
        "check FAILs, 1 otherwise.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", type=Path, help="station config (YAML); default: the demo")
    parser.add_argument("--json", action="store_true", help="print the checks as one JSON document")
    parser.add_argument("--lang", choices=LANGUAGES, help="language (default: the locale, LANG; else en)")
    parser.add_argument(
        "--calibration-max-age-days", type=_positive, default=180.0, metavar="DAYS",
        help="WARN for a calibration older than this (default 180)",
    )  # fmt: skip
    parser.add_argument(
        "--disk-warn-gb", type=_positive, default=2.0, metavar="GIB",
        help="WARN with less free space than this where the records go (default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--disk-fail-gb", type=_positive, default=0.5, metavar="GIB",
        help="FAIL with less free space than this (default 0.5)",
    )  # fmt: skip
    parser.add_argument(
        "--camera-timeout-s", type=_positive, metavar="S",
        help="how long to wait for one frame (default: the source's open_timeout_s)",
    )  # fmt: skip
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
