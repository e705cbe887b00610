"""`lineside models list|add|verify|promote|rollback`: the model registry, over training.registry.

A recipe with `model_registry` follows the promoted version: the running appliance swaps it in between parts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.errors import LinesideError
from edge.i18n import say
from training.registry import (
    GateConfig,
    ModelEntry,
    add_version,
    list_registry,
    promote,
    read_gate,
    rollback,
    verify_version,
)

EXIT_OK = 0
EXIT_REFUSED = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    parser = subparsers.add_parser(
        "models",
        help=say("help.models", lang),
        description=say("help.models.about", lang),
        epilog=say("help.models.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--registry", type=Path, default=Path("models"), help=say("help.models.registry", lang)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help=say("help.models.list", lang))
    add = actions.add_parser("add", help=say("help.models.add", lang))
    add.add_argument("model_dir", type=Path, help=say("help.models.model_dir", lang))
    verify = actions.add_parser("verify", help=say("help.models.verify", lang))
    verify.add_argument("name")
    verify.add_argument("version")
    prom = actions.add_parser("promote", help=say("help.models.promote", lang))
    prom.add_argument("name")
    prom.add_argument("version")
    prom.add_argument("--eval-data", type=Path, help=say("help.models.eval_data", lang))
    prom.add_argument("--max-escape", type=float, help=say("help.models.max_escape", lang))
    prom.add_argument("--note", default="", help=say("help.models.note", lang))
    back = actions.add_parser("rollback", help=say("help.models.rollback", lang))
    back.add_argument("name")
    back.add_argument("--note", default="", help=say("help.models.note", lang))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry: Path = args.registry
    try:
        if args.action == "list":
            print(format_entries(list_registry(registry)))
        elif args.action == "add":
            print(f"added {add_version(registry, args.model_dir)}")
        elif args.action == "verify":
            card = verify_version(registry, args.name, args.version)
            print(f"{card.name} {card.version}: card, sha256, session, shapes and warm-up ok")
        elif args.action == "promote":
            pointer = promote(
                registry,
                args.name,
                args.version,
                gate=_gate(registry, args.max_escape),
                eval_data=args.eval_data,
                note=args.note,
            )
            print(f"{pointer.name}: {pointer.current} is current (previous {pointer.previous or '-'})")
            print(f"  {pointer.history[-1].note}")
        else:
            pointer = rollback(registry, args.name, note=args.note)
            print(f"{pointer.name}: rolled back to {pointer.current}")
    except LinesideError as exc:
        print(f"lineside models {args.action}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _gate(registry: Path, max_escape: float | None) -> GateConfig:
    gate = read_gate(registry)
    if max_escape is None:
        return gate
    if not 0.0 <= max_escape <= 1.0:
        raise LinesideError(f"--max-escape {max_escape} is not in [0, 1]")
    return gate.model_copy(update={"max_escape_rate": max_escape})


def format_entries(entries: list[ModelEntry]) -> str:
    """A plain table: one line per version, marked current (*) or previous (-), with the card's metrics."""
    if not entries:
        return "no models"
    figures = f"{'mAP50':>6} {'escape':>7} {'overkill':>8} {'report':>7}"
    lines = [f"{'':2}{'name':<14} {'version':<10} {figures}  classes"]
    for entry in entries:
        current = entry.pointer.current if entry.pointer else None
        previous = entry.pointer.previous if entry.pointer else None
        for v in entry.versions:
            mark = "*" if v.version == current else "-" if v.version == previous else ""
            if v.card is None:
                lines.append(f"{mark:2}{entry.name:<14} {v.version:<10} {v.problem}")
                continue
            metrics = v.card.metrics
            level = metrics.get("part_level")
            part = level if isinstance(level, dict) else {}
            row = (
                f"{_num(metrics.get('mAP50')):>6} {_num(part.get('escape_rate')):>7} "
                f"{_num(part.get('overkill_rate')):>8} {_num(v.escape_rate):>7}"
            )
            lines.append(f"{mark:2}{entry.name:<14} {v.version:<10} {row}  {','.join(v.card.classes)}")
        if entry.pointer_problem:
            lines.append(f"  {entry.name}: pointer problem: {entry.pointer_problem}")
    lines.append("* current  - previous (rollback target)  report: escape rate in eval/report.json")
    return "\n".join(lines)


def _num(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
