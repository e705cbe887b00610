"""`lineside aas export`: the station as an Asset Administration Shell file (AASX or JSON)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from edge.errors import LinesideError
from edge.i18n import say

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    parser = subparsers.add_parser("aas", help=say("help.aas", lang), description=say("help.aas.about", lang))
    actions = parser.add_subparsers(dest="aas_action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help=say("help.aas.export", lang),
        description=say("help.aas.export.about", lang),
        epilog=say("help.aas.export.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("config", nargs="?", type=Path, help=say("help.config_demo", lang))
    export.add_argument("--out", type=Path, required=True, help=say("help.aas.export.out", lang))
    export.add_argument("--state-dir", type=Path, help=say("help.aas.export.state_dir", lang))
    export.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return run_export(args.config, args.out, state_dir=args.state_dir)


def run_export(
    config_path: Path | None,
    out: Path,
    *,
    state_dir: Path | None = None,
    now: float | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The command: 0 and one line saying what was written, or 2 and one line naming what is wrong."""
    err = sys.stderr if stderr is None else stderr
    try:
        written, count = export(config_path, out, state_dir=state_dir, now=now)
    except LinesideError as exc:
        print(f"lineside aas export: {exc}", file=err)
        return EXIT_BAD_INPUT
    print(f"wrote {written} (1 shell, {count - 1} submodels)", file=err)
    return EXIT_OK


def export(
    config_path: Path | None, out: Path, *, state_dir: Path | None = None, now: float | None = None
) -> tuple[Path, int]:
    from edge.aas.counts import read_snapshot
    from edge.aas.environment import build_environment
    from edge.aas.files import FORMATS, write_export
    from edge.aas.identity import station_identity
    from edge.station.config import load_config

    if out.suffix.lower() not in FORMATS:  # before any work: the one mistake a person makes most
        raise LinesideError(f"--out {out}: the file must end in .aasx or .json")
    if config_path is None:
        from lineside.demo import demo_config

        config = demo_config(state_dir)
    else:
        config = load_config(config_path)
    aas = config.aas
    snapshot = read_snapshot(
        config.records.dir, aas.shift_starts, aas.shifts_kept, time.time() if now is None else now
    )
    store = build_environment(config, snapshot)
    shell_id = station_identity(aas, config.station.name).shell_id
    return write_export(out, store, shell_id), len(list(store))
