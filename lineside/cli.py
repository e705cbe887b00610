"""The `lineside` command: one thin sub-command per job, each a function over library code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from edge.i18n import say
from edge.locale import environment_language
from lineside import __version__
from lineside.parser import LinesideParser, help_language, parser_class

# Explicit registry: command name -> module whose register(subparsers, lang) adds its parser and handler,
# its help texts in `lang`.
COMMANDS = {
    "run": "lineside.commands.run",
    "inspect": "lineside.commands.inspect",
    "records": "lineside.commands.records",
    "alarms": "lineside.commands.alarms",
    "robot-sim": "lineside.commands.robotsim",
    "calibrate": "lineside.commands.calibrate",
    "bench": "lineside.commands.bench",
    "soak": "lineside.commands.soak",
    "doctor": "lineside.commands.doctor",
    "train": "lineside.commands.train",
    "eval": "lineside.commands.eval",
    "models": "lineside.commands.models",
    "dataset": "lineside.commands.dataset",
    "aas": "lineside.commands.aas",
}
COMMAND_MODULES = tuple(COMMANDS.values())


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command named on the command line (skipping the global options), if it is a known one."""
    args = iter(argv)
    for arg in args:
        if arg == "--log-level":
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None, language: str | None = None) -> LinesideParser:
    """The parser, its help in `language` (None: the locale's); with `only`, just that command's module is
    imported, so `lineside run` (the supervisor, alive for months) does not carry the detector, calibration
    or benchmark code."""
    import importlib

    lang = environment_language() if language is None else language
    parser = parser_class(lang)(prog="lineside", description=say("help.lineside.about", lang))
    version = say("argparse.version", lang)
    parser.add_argument("--version", action="version", version=f"lineside {__version__}", help=version)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help=say("help.lineside.log_level", lang),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module_name).register(subparsers, lang)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    only = chosen_command(arguments)
    parser = build_parser(only)
    language = help_language(parser, arguments)
    if language != parser.language:  # `--lang` given to a command that takes it
        parser = build_parser(only, language)
    args = parser.parse_args(arguments)
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
