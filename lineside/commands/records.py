"""`lineside records`: list or export inspection records; a thin layer over edge.records.query.

Reads the database read-only, so it is safe to run while the appliance is recording.
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from edge.atomic import atomic_write_text
from edge.errors import LinesideError
from edge.i18n import Message, say
from edge.judge.inspection import Verdict
from edge.locale import FALLBACK
from edge.records.model import InspectionRecord
from edge.records.query import export_csv, export_jsonl, query
from edge.records.schema import DB_FILE
from lineside.commands.timearg import parse_window

OutputFormat = Literal["table", "csv", "jsonl"]
ConfigResolver = Callable[[Path], Path]  # appliance config file -> its records folder

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    lang: str,
    config_resolver: ConfigResolver | None = None,
) -> None:
    """Add `records`, its help texts in `lang`; `config_resolver` turns --config FILE into the records folder
    (the config loader)."""
    parser = subparsers.add_parser(
        "records", help=say("help.records", lang), description=say("help.records.about", lang)
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dir", type=Path, help=say("help.records.dir", lang))
    where.add_argument("--config", type=Path, help=say("help.records.config", lang))
    parser.add_argument(
        "--verdict", choices=[v.value for v in Verdict], help=say("help.records.verdict", lang)
    )
    time = Message("help.records.time")
    parser.add_argument("--since", help=say("help.records.since", lang, time=time))
    parser.add_argument("--until", help=say("help.records.until", lang, time=time))
    parser.add_argument("--limit", type=int, help=say("help.records.limit", lang))
    formats = ("table", "csv", "jsonl")
    parser.add_argument("--format", choices=formats, default="table", help=say("help.records.format", lang))
    parser.add_argument("--output", type=Path, help=say("help.records.output", lang))
    parser.set_defaults(
        handler=functools.partial(_handle_args, config_resolver=config_resolver or _records_dir)
    )
    _register_actions(parser, lang, config_resolver or _records_dir)


def _register_actions(parser: argparse.ArgumentParser, lang: str, config_resolver: ConfigResolver) -> None:
    """`lineside records mark | show | summary | alarms`."""
    actions = parser.add_subparsers(dest="records_action", metavar="ACTION")
    _register_mark(actions, lang, config_resolver)
    from lineside.commands.records_show import register_show  # `records show SEQ`: a record's evidence

    register_show(actions, lang, config_resolver)
    from lineside.commands.records_summary import register_summary

    register_summary(actions, lang, config_resolver)
    from lineside.commands.records_alarms import register_alarms  # line alarms: edge/spc over the records

    register_alarms(actions, lang, config_resolver)


def _register_mark(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], lang: str, config_resolver: ConfigResolver
) -> None:
    """`lineside records mark SEQ --as KIND`: an operator's verdict on a record, for relabelling."""
    from edge.records.marks import MARK_KINDS

    mark = actions.add_parser(
        "mark", help=say("help.records.mark", lang), description=say("help.records.mark.about", lang)
    )
    mark.add_argument("record", metavar="SEQ", help=say("help.records.seq", lang))
    mark.add_argument(
        "--as", dest="kind", required=True, choices=MARK_KINDS, help=say("help.records.mark.as", lang)
    )
    mark.add_argument("--note", default="", help=say("help.records.mark.note", lang))
    where = mark.add_mutually_exclusive_group()
    where.add_argument("--dir", dest="mark_dir", type=Path, help=say("help.records.dir_demo", lang))
    where.add_argument("--config", dest="mark_config", type=Path, help=say("help.records.config_file", lang))
    mark.set_defaults(handler=functools.partial(_handle_mark, config_resolver=config_resolver))


def _handle_mark(args: argparse.Namespace, config_resolver: ConfigResolver) -> int:
    from edge.records.marks import add_mark, resolve_key

    # --dir/--config may be given before `mark` (the records parser's) or after it (mark's own).
    records_dir: Path | None = args.mark_dir or args.dir
    config = args.mark_config or args.config
    try:
        if records_dir is None and config is not None:
            records_dir = config_resolver(config)
        if records_dir is None:
            from lineside.demo import default_state_dir

            records_dir = default_state_dir() / "records"
        db_path = records_dir / DB_FILE
        boot_id, seq = resolve_key(db_path, args.record)
        add_mark(db_path, boot_id, seq, args.kind, args.note)
    except (LinesideError, OSError) as exc:
        print(f"lineside records: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"marked {boot_id}:{seq} as {args.kind}")
    return EXIT_OK


def _records_dir(config_path: Path) -> Path:
    from edge.station.config import load_config

    return load_config(config_path).records.dir


def _handle_args(args: argparse.Namespace, config_resolver: ConfigResolver | None) -> int:
    if args.dir is not None:
        records_dir: Path = args.dir
    elif args.config is None or config_resolver is None:
        from lineside.demo import default_state_dir

        records_dir = default_state_dir() / "records"
    else:
        try:
            records_dir = config_resolver(args.config)
        except LinesideError as exc:
            print(f"lineside records: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return run_records(
        records_dir,
        verdict=args.verdict,
        since=args.since,
        until=args.until,
        limit=args.limit,
        fmt=args.format,
        output=args.output,
    )


def run_records(
    records_dir: Path,
    *,
    verdict: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
    fmt: OutputFormat = "table",
    output: Path | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now: float | None = None,
) -> int:
    """The command itself: returns the exit code; errors are one line on `stderr` and exit code 2."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    now_s = time.time() if now is None else now
    try:
        since_s, until_s = parse_window(since, until, now_s)
        records = query(records_dir / DB_FILE, verdict=verdict, since=since_s, until=until_s, limit=limit)
        text = render(records, fmt)
        if output is not None:
            atomic_write_text(output, text)
            print(f"wrote {len(records)} record(s) to {output}", file=err)
        else:
            out.write(text)
    except (LinesideError, OSError) as exc:
        print(f"lineside records: {exc}", file=err)
        return EXIT_BAD_INPUT
    return EXIT_OK


def render(records: Sequence[InspectionRecord], fmt: OutputFormat) -> str:
    buffer = io.StringIO()
    if fmt == "csv":
        export_csv(records, buffer)
    elif fmt == "jsonl":
        export_jsonl(records, buffer)
    else:
        _write_table(records, buffer)
    return buffer.getvalue()


_TABLE_HEADER = (
    "TIME (local)",
    "BOOT:SEQ",
    "PART",
    "RECIPE",
    "VERDICT",
    "TOP DEFECT",
    "MS",
    "FLAGS",
    "IMAGE",
)


def _table_row(record: InspectionRecord) -> tuple[str, ...]:
    top = max(record.detections, key=lambda d: d.confidence, default=None)
    flags = "".join(
        letter
        for letter, on in (("N", record.near_threshold), ("L", record.late), ("E", record.image_evicted))
        if on
    )
    total = record.latency_ms.get("total")
    return (
        datetime.fromtimestamp(record.triggered_at).strftime("%Y-%m-%d %H:%M:%S"),
        f"{record.boot_id}:{record.seq}",
        record.part_id or "-",
        record.recipe,
        record.verdict.value if record.error_code == 0 else f"{record.verdict.value}({record.error_code})",
        "-" if top is None else f"{top.class_name} {top.confidence:.2f}",
        "-" if total is None else f"{total:.1f}",
        flags or "-",
        record.image_path or "-",
    )


def _write_table(records: Sequence[InspectionRecord], out: TextIO) -> None:
    rows = [_TABLE_HEADER, *(_table_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_HEADER))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")
    out.write(f"{len(records)} record(s); flags: N near threshold, L late result, E image evicted\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: `python -m lineside.commands.records records --dir ...` (tests, before the CLI)."""
    parser = argparse.ArgumentParser(prog="lineside")
    register(parser.add_subparsers(dest="command", required=True), FALLBACK)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
