"""`lineside run`: start the appliance (or only validate its config with --check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from edge.errors import LinesideError
from edge.i18n import Message, say
from edge.runtime.messages import LedgerEvent
from edge.station.config import LinesideConfig, load_config
from edge.station.preflight import preflight
from lineside.commands.summary import RunSummary


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    parser = subparsers.add_parser(
        "run",
        help=say("help.run", lang),
        description=say("help.run.about", lang),
        epilog=say("help.run.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", type=Path, help=say("help.config_demo", lang))
    parser.add_argument("--check", action="store_true", help=say("help.run.check", lang))
    parser.add_argument("--max-parts", type=int, metavar="N", help=say("help.run.max_parts", lang))
    parser.add_argument("--state-dir", type=Path, help=say("help.run.state_dir", lang))
    parser.add_argument("--quiet", action="store_true", help=say("help.run.quiet", lang))
    parser.add_argument("--recipe", type=int, metavar="N", help=say("help.run.recipe", lang))
    parser.add_argument("--trigger", choices=("free_run", "robot"), help=say("help.run.trigger", lang))
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
        origin = args.config or Message("run.demo_config")
        try:
            for line in preflight(config):
                print(f"  {line}")
        except LinesideError as exc:
            print(f"lineside run: {exc}", file=sys.stderr)
            return 1
        said = {"recipes": len(config.recipes), "source": config.source.kind, "trigger": config.trigger.mode}
        print(say("run.valid", config.station.language, origin=origin, **said))
        return 0
    truth = None
    if args.config is None:  # the embedded demo knows its parts' truth: its summary scores the line
        from lineside.commands.robotsim import load_truth
        from lineside.demo import demo_parts_dir

        truth = load_truth(demo_parts_dir() / "truth.csv")
    return run_line(config, out=sys.stdout, quiet=args.quiet, truth=truth)


def _link_address(config: LinesideConfig) -> Message:
    link = config.robot_link
    if link.role == "client":
        return Message("run.link_client", {"host": link.robot_host, "port": link.robot_port})
    return Message("run.link_server", {"host": link.host, "port": link.port})


def start_lines(config: LinesideConfig) -> list[str]:
    """What the line starts, in its language (`station.language`, else the locale's): the station, its source,
    the Modbus side, the records and, when served, the status page's address."""
    lang = config.station.language
    where = {"source": config.source.kind, "link": _link_address(config), "records": config.records.dir}
    lines = [say("run.started", lang, station=config.station.name, **where)]
    if config.status.enabled:
        page = f"http://{config.status.bind}:{config.status.port}/"
        lines.append(say("run.status_page", lang, page=page))
    return lines


def run_line(
    config: LinesideConfig, out: TextIO, quiet: bool = False, truth: dict[str, bool] | None = None
) -> int:
    from edge.runtime.supervisor import Supervisor
    from edge.runtime.systemd import notifier

    summary = RunSummary(truth, config.station.language, config.station.names)  # None: the locale's

    def on_inspection(event: LedgerEvent) -> None:
        summary.add(event)
        if not quiet:
            print(summary.line(event), file=out, flush=True)

    for line in start_lines(config):
        print(line, file=out, flush=True)
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
