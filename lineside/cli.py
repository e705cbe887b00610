"""The `lineside` command: one thin sub-command per job, each a function over library code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lineside import __version__

# Explicit registry: each module has register(subparsers) adding its parser and handler.
COMMAND_MODULES = (
    "lineside.commands.run",
    "lineside.commands.inspect",
    "lineside.commands.records",
    "lineside.commands.robotsim",
    "lineside.commands.calibrate",
    "lineside.commands.bench",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="lineside",
        description="lineside: an edge visual-inspection appliance (ONNX detector, Modbus TCP robot link).",
    )
    parser.add_argument("--version", action="version", version=f"lineside {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
