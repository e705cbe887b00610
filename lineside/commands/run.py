"""`lineside run`: start the appliance (or only validate its config with --check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from edge.errors import LinesideError
from edge.runtime.messages import LedgerEvent
from edge.station.config import LinesideConfig, load_config
from edge.station.preflight import preflight
from lineside.commands.summary import RunSummary

EXAMPLES = """examples:
  lineside run                          the embedded demo line (demo model, Modbus on 127.0.0.1:5020)
  lineside run --max-parts 50           the demo, stopping cleanly after 50 inspections
  lineside run --trigger robot          the demo, triggered by a robot (try: lineside robot-sim --demo)
  lineside run /etc/lineside/line.yaml  a real station
  lineside run --check line.yaml        validate a config and exit 0 (valid) or 1 (names the field)
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the inspection line (the embedded demo when no config is given)",
        description="Run the inspection line: capture, inference, robot link and recorder, supervised.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "config", nargs="?", type=Path, help="station config (YAML); default: the embedded demo"
    )
    parser.add_argument("--check", action="store_true", help="validate the config and exit (0 valid, 1 not)")
    parser.add_argument("--max-parts", type=int, metavar="N", help="stop cleanly after N inspections")
    parser.add_argument("--state-dir", type=Path, help="demo only: where records go (default: XDG state dir)")
    parser.add_argument("--quiet", action="store_true", help="no line per part, only the summary")
    parser.add_argument(
        "--recipe",
        type=int,
        metavar="N",
        help="the recipe free-running parts use (overrides default_recipe); the demo's recipe 2 chains "
        "an anomaly model after the detector",
    )
    parser.add_argument(
        "--trigger",
        choices=("free_run", "robot"),
        help="override trigger.mode; `--trigger robot` lets a robot (or lineside robot-sim) drive the demo",
    )
    parser.set_defaults(handler=handle)


def resolve_config(
    config_path: Path | None,
    state_dir: Path | None,
    max_parts: int | None,
    trigger: str | None = None,
    recipe: int | None = None,
) -> LinesideConfig:
    if config_path is None:
        from lineside.demo import demo_config

        config = demo_config(state_dir)
    else:
        config = load_config(config_path)
    if trigger is not None and trigger != config.trigger.mode:
        updates: dict[str, object] = {"trigger": config.trigger.model_copy(update={"mode": trigger})}
        if config_path is None:
            # The demo's 60-part limit is one pass of its free-running takt; a robot decides how many.
            updates["max_parts"] = None
        config = config.model_copy(update=updates)
    if recipe is not None:
        if config.recipe(recipe) is None:
            numbers = ", ".join(str(r.number) for r in config.recipes)
            raise LinesideError(f"--recipe {recipe}: not a recipe of this config (it has {numbers})")
        config = config.model_copy(update={"default_recipe": recipe})
    if max_parts is not None:
        if max_parts < 1:
            raise LinesideError("--max-parts: must be at least 1")
        config = config.model_copy(update={"max_parts": max_parts})
    return config


def handle(args: argparse.Namespace) -> int:
    try:
        config = resolve_config(args.config, args.state_dir, args.max_parts, args.trigger, args.recipe)
    except LinesideError as exc:
        print(f"lineside run: {exc}", file=sys.stderr)
        return 1
    if args.check:
        origin = args.config or "embedded demo config"
        try:
            for line in preflight(config):
                print(f"  {line}")
        except LinesideError as exc:
            print(f"lineside run: {exc}", file=sys.stderr)
            return 1
        print(
            f"{origin}: valid ({len(config.recipes)} recipe(s), source {config.source.kind}, "
            f"trigger {config.trigger.mode})"
        )
        return 0
    truth = None
    if args.config is None:  # the embedded demo knows its parts' truth: its summary scores the line
        from lineside.commands.robotsim import load_truth
        from lineside.demo import demo_parts_dir

        truth = load_truth(demo_parts_dir() / "truth.csv")
    return run_line(config, out=sys.stdout, quiet=args.quiet, truth=truth)


def _link_address(config: LinesideConfig) -> str:
    link = config.robot_link
    if link.role == "client":
        return f"client of {link.robot_host}:{link.robot_port}"
    return f"server on {link.host}:{link.port}"


def run_line(
    config: LinesideConfig, out: TextIO, quiet: bool = False, truth: dict[str, bool] | None = None
) -> int:
    from edge.runtime.supervisor import Supervisor
    from edge.runtime.systemd import notifier

    summary = RunSummary(truth, config.station.language)  # None: the locale's (docs/i18n.md)

    def on_inspection(event: LedgerEvent) -> None:
        summary.add(event)
        if not quiet:
            print(summary.line(event), file=out, flush=True)

    print(
        f"lineside: station '{config.station.name}', source {config.source.kind}, "
        f"Modbus {_link_address(config)}, records {config.records.dir}",
        file=out,
        flush=True,
    )
    if config.status.enabled:
        page = f"http://{config.status.bind}:{config.status.port}/"
        print(f"lineside: status page {page} (metrics at {page}metrics)", file=out, flush=True)
    try:
        supervisor = Supervisor(config, on_inspection=on_inspection, notify=notifier())
        code = supervisor.run()
    except LinesideError as exc:
        print(f"lineside run: {exc}", file=sys.stderr)
        return 1
    print(summary.render(), file=out, flush=True)
    for line in summary.miss_lines():
        print(line, file=out, flush=True)
    if supervisor.fault:
        print(f"lineside run: FAULT: {supervisor.fault}", file=sys.stderr)
    return code
